//! Every WGSL module the crate compiles parses and validates with naga, without a GPU.

use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};

#[test]
fn every_shader_module_validates() {
    let modules = wgpu_rnn::gpu::shaders::all_modules();
    assert_eq!(modules.len(), 17);
    for (label, source) in modules {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
        // Only the modules named for subgroups may use them.
        let mut validator = if label.ends_with(".subgroups") {
            let mut v = Validator::new(ValidationFlags::all(), Capabilities::SUBGROUP);
            v.subgroup_stages(ShaderStages::COMPUTE)
                .subgroup_operations(SubgroupOperationSet::all());
            v
        } else {
            Validator::new(ValidationFlags::all(), Capabilities::empty())
        };
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
    }
}

#[test]
fn a_broken_shader_fails_validation() {
    // The check above must be able to fail: a type error is caught.
    let source = "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }";
    assert!(naga::front::wgsl::parse_str(source).is_err());
}
