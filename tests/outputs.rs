//! Output files: written all-or-nothing, checked before the work starts, and written to what the
//! path names (a link stays a link, a FIFO or device is written through, a file keeps its
//! permissions and hard links).

use std::path::Path;
use std::process::Command;

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use wgpu_rnn::{OutputSet, RnnError, read_npy_f32, write_npy_f32};

fn temp_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn writes_replace_the_file_whole_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npy");
    write_npy_f32(&path, &Array2::<f32>::ones((2, 3))).unwrap();
    write_npy_f32(&path, &Array1::<f32>::zeros(4)).unwrap();
    let back: Array1<f32> = read_npy_f32(&path).unwrap();
    assert_eq!(back, Array1::<f32>::zeros(4));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");

    // A directory in the way: refused, and what it holds is untouched.
    let blocked = dir.path().join("blocked.npy");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let err = write_npy_f32(&blocked, &Array1::<f32>::zeros(4)).unwrap_err();
    assert!(matches!(err, RnnError::Io { .. }), "{err}");
    assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"x");
    let missing = dir.path().join("no/such/dir/out.npy");
    assert!(write_npy_f32(&missing, &Array1::<f32>::zeros(1)).is_err());
}

#[test]
fn an_unfinished_set_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.npy");
    let second = dir.path().join("second.npy");
    std::fs::write(&first, b"old first").unwrap();
    std::fs::write(&second, b"old second").unwrap();

    // The second output is never written (its computation failed): commit refuses, and the
    // first, although written, stays as it was.
    let mut set = OutputSet::new();
    let a = set.add(&first).unwrap();
    set.add(&second).unwrap();
    set.write_npy_f32(a, &Array1::<f32>::zeros(3)).unwrap();
    let err = set.commit().unwrap_err();
    assert!(err.to_string().contains("never written"), "{err}");
    assert_eq!(std::fs::read(&first).unwrap(), b"old first");
    assert_eq!(std::fs::read(&second).unwrap(), b"old second");
    assert_eq!(temp_names(dir.path()), Vec::<String>::new());

    // Dropped without commit (an error in between): the same.
    let mut set = OutputSet::new();
    let a = set.add(&first).unwrap();
    set.write_npy_f32(a, &Array1::<f32>::zeros(3)).unwrap();
    drop(set);
    assert_eq!(std::fs::read(&first).unwrap(), b"old first");
    assert_eq!(temp_names(dir.path()), Vec::<String>::new());

    // A bad second path is refused when it is added, before anything is computed or written.
    let mut set = OutputSet::new();
    set.add(&first).unwrap();
    let err = set.add(dir.path().join("nowhere/h.npy")).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    let err = set.add(&first).unwrap_err();
    assert!(err.to_string().contains("same file"), "{err}");
}

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};

    use super::*;

    fn npy(a: &Array1<f32>) -> Vec<u8> {
        let mut out = Vec::new();
        a.write_npy(&mut out).unwrap();
        out
    }

    #[test]
    fn a_link_stays_a_link_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("real.npy");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("out.npy");
        symlink(&target, &link).unwrap();
        let a = Array1::from(vec![1.0f32, 2.0]);
        write_npy_f32(&link, &a).unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), npy(&a));
        // The temporary went beside the target (so the rename works across file systems).
        assert_eq!(temp_names(elsewhere.path()), Vec::<String>::new());
        assert_eq!(temp_names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_chain_of_links_is_followed_to_its_end_even_when_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let end = sub.join("end.npy");
        std::fs::write(&end, b"old").unwrap();
        // out -> mid (relative) -> sub/end.npy (relative to mid's directory).
        symlink("sub/end.npy", dir.path().join("mid")).unwrap();
        symlink("mid", dir.path().join("out.npy")).unwrap();
        let a = Array1::from(vec![3.0f32]);
        write_npy_f32(dir.path().join("out.npy"), &a).unwrap();
        for name in ["out.npy", "mid"] {
            let meta = dir.path().join(name).symlink_metadata().unwrap();
            assert!(meta.file_type().is_symlink(), "{name} was replaced");
        }
        assert_eq!(std::fs::read(&end).unwrap(), npy(&a));

        // A dangling chain: the file is created where it ends, as the shell's `>` does.
        symlink("sub/new.npy", dir.path().join("dangling")).unwrap();
        write_npy_f32(dir.path().join("dangling"), &a).unwrap();
        assert!(
            dir.path()
                .join("dangling")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(sub.join("new.npy")).unwrap(), npy(&a));

        symlink("loop_b", dir.path().join("loop_a")).unwrap();
        symlink("loop_a", dir.path().join("loop_b")).unwrap();
        let err = write_npy_f32(dir.path().join("loop_a"), &a).unwrap_err();
        assert!(matches!(err, RnnError::Io { .. }), "{err}");
    }

    #[test]
    fn a_fifo_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.npy");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo failed");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let a = Array1::from(vec![1.0f32, 2.0, 3.0]);
        write_npy_f32(&fifo, &a).unwrap();
        assert_eq!(reader.join().unwrap(), npy(&a));
        let meta = fifo.symlink_metadata().unwrap();
        assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
        assert_eq!(temp_names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_device_is_written_through_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null.npy");
        symlink("/dev/null", &link).unwrap();
        let a = Array1::from(vec![1.0f32]);
        write_npy_f32(&link, &a).unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        write_npy_f32("/dev/null", &a).unwrap();
        let meta = Path::new("/dev/null").symlink_metadata().unwrap();
        assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    }

    #[test]
    fn hard_links_and_permissions_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.npy");
        let other = dir.path().join("other_name.npy");
        std::fs::write(&path, b"old").unwrap();
        std::fs::hard_link(&path, &other).unwrap();
        let inode = path.metadata().unwrap().ino();
        let a = Array1::from(vec![5.0f32, 6.0]);
        write_npy_f32(&path, &a).unwrap();
        assert_eq!(path.metadata().unwrap().ino(), inode, "the hard link broke");
        assert_eq!(std::fs::read(&other).unwrap(), npy(&a));

        let private = dir.path().join("private.npy");
        std::fs::write(&private, b"old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_npy_f32(&private, &a).unwrap();
        assert_eq!(private.metadata().unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&private).unwrap(), npy(&a));
    }
}

/// A Keras SimpleRNN layer (D = 3, M = 4) and an input for it, for the command line.
fn write_layer_and_input(dir: &Path) {
    let mut npz = NpzWriter::new(std::fs::File::create(dir.join("w.npz")).unwrap());
    npz.add_array("arr_0", &Array2::<f32>::zeros((3, 4)))
        .unwrap();
    npz.add_array("arr_1", &Array2::<f32>::zeros((4, 4)))
        .unwrap();
    npz.finish().unwrap();
    Array3::<f32>::zeros((2, 5, 3))
        .write_npy(std::fs::File::create(dir.join("x.npy")).unwrap())
        .unwrap();
    // Wrong feature count: running on it would fail after the outputs were checked.
    Array3::<f32>::zeros((2, 5, 7))
        .write_npy(std::fs::File::create(dir.join("x_bad.npy")).unwrap())
        .unwrap();
}

#[test]
fn the_cli_checks_every_output_first_and_changes_none_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    write_layer_and_input(dir.path());
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("keep.npy"), b"keep me").unwrap();
    let run = |input: &str, final_state: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wgpu-rnn"))
            .args(["run", &p("w.npz"), &p(input), "-o", &p("keep.npy")])
            .args(["--final-state", final_state, "--backend", "cpu"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, stderr) = run("x.npy", &p("nowhere/h.npy"));
    assert!(!ok && stderr.contains("nowhere"), "{stderr}");
    assert_eq!(std::fs::read(p("keep.npy")).unwrap(), b"keep me");
    // The output is refused before the input is even looked at.
    let (ok, stderr) = run("x_bad.npy", &p("nowhere/h.npy"));
    assert!(!ok && stderr.contains("nowhere"), "{stderr}");
    // A run that fails after the check leaves both outputs as they were.
    std::fs::write(p("h.npy"), b"keep me too").unwrap();
    let (ok, stderr) = run("x_bad.npy", &p("h.npy"));
    assert!(!ok && stderr.contains("input"), "{stderr}");
    assert_eq!(std::fs::read(p("keep.npy")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(p("h.npy")).unwrap(), b"keep me too");
    assert_eq!(temp_names(dir.path()), Vec::<String>::new());

    let (ok, stderr) = run("x.npy", &p("h.npy"));
    assert!(ok, "{stderr}");
    let y: Array2<f32> = read_npy_f32(p("keep.npy")).unwrap();
    let h: Array2<f32> = read_npy_f32(p("h.npy")).unwrap();
    assert_eq!((y.dim(), h.dim()), ((2, 4), (2, 4)));
}
