//! `model.summary()`, as text.

use std::fmt;

use crate::keras::model::KerasModel;

fn shape_text(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
        .collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// Thousands separators, as Keras prints parameter counts.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(bytes: usize) -> String {
    let units = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", units[unit])
    }
}

impl fmt::Display for KerasModel {
    /// The layers with their output shapes and parameter counts, as `model.summary()` prints
    /// them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<(String, String, String)> = self
            .layers()
            .iter()
            .zip(self.output_shapes())
            .map(|(layer, shapes)| {
                let shapes: Vec<String> = shapes.iter().map(|s| shape_text(s)).collect();
                let shapes = if shapes.len() == 1 {
                    shapes[0].clone()
                } else {
                    format!("[{}]", shapes.join(", "))
                };
                (
                    format!("{} ({})", layer.name(), layer.class_name()),
                    shapes,
                    grouped(layer.param_count()),
                )
            })
            .collect();
        let headers = ("Layer (type)", "Output Shape", "Param #");
        let w0 = rows
            .iter()
            .map(|r| r.0.len())
            .chain([headers.0.len()])
            .max()
            .unwrap_or(0);
        let w1 = rows
            .iter()
            .map(|r| r.1.len())
            .chain([headers.1.len()])
            .max()
            .unwrap_or(0);
        let w2 = rows
            .iter()
            .map(|r| r.2.len())
            .chain([headers.2.len()])
            .max()
            .unwrap_or(0);
        let rule = |c: char| format!("{}\n", c.to_string().repeat(w0 + w1 + w2 + 6));
        writeln!(f, "Model: \"{}\"", self.name())?;
        write!(f, "{}", rule('='))?;
        writeln!(
            f,
            "{:<w0$}   {:<w1$}   {:>w2$}",
            headers.0, headers.1, headers.2
        )?;
        write!(f, "{}", rule('='))?;
        for (i, (name, shape, params)) in rows.iter().enumerate() {
            writeln!(f, "{name:<w0$}   {shape:<w1$}   {params:>w2$}")?;
            if i + 1 < rows.len() {
                write!(f, "{}", rule('-'))?;
            }
        }
        write!(f, "{}", rule('='))?;
        let total = self.param_count();
        let bytes = human_bytes(total * 4);
        writeln!(f, " Total params: {} ({bytes})", grouped(total))?;
        writeln!(f, " Trainable params: {} ({bytes})", grouped(total))?;
        writeln!(f, " Non-trainable params: 0 (0.00 B)")
    }
}

#[cfg(test)]
mod tests {
    use super::{grouped, human_bytes};

    #[test]
    fn numbers_print_as_keras_prints_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1234), "1,234");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(human_bytes(13864), "13.54 KB");
    }
}
