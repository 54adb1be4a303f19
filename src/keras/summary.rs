//! `model.summary()`, as text: a Sequential model's layers, or a functional model's layers
//! and ops with what each reads ("Connected to").

use std::fmt;

use crate::keras::calls::show;
use crate::keras::model::{EntryKind, KerasModel};

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
        format!("{bytes}.00 B")
    } else {
        format!("{value:.2} {}", units[unit])
    }
}

impl KerasModel {
    /// The rows `model.summary()` prints: name (type), output shape, parameters and, for a
    /// functional model, what each layer reads.
    fn summary_rows(&self) -> Vec<[String; 4]> {
        let shapes_text = |node: &crate::keras::model::ModelNode| {
            let shapes: Vec<String> = node.outputs.iter().map(|t| show(&t.shape)).collect();
            if shapes.len() == 1 {
                shapes[0].clone()
            } else {
                format!("[{}]", shapes.join(", "))
            }
        };
        let mut rows = Vec::new();
        for (e, entry) in self.entries().iter().enumerate() {
            let shown = !entry.synthesized
                && (self.is_functional() || !matches!(entry.kind, EntryKind::Input(_)));
            if !shown {
                continue;
            }
            let calls: Vec<_> = self.nodes().iter().filter(|n| n.entry == e).collect();
            // Keras prints the shapes of the layer's last call.
            let shape = calls.last().map_or("?".to_string(), |n| shapes_text(n));
            let params = match entry.kind {
                EntryKind::Layer(l) => self.layers()[l].param_count(),
                _ => 0,
            };
            let mut reads = Vec::new();
            for node in &calls {
                for t in node.call.reads() {
                    if node.call.input_masks.iter().flatten().any(|m| *m == t) {
                        continue;
                    }
                    let from = &self.nodes()[t.node];
                    reads.push(format!(
                        "{}[{}][{}]",
                        self.entries()[from.entry].name,
                        from.index,
                        t.output
                    ));
                }
            }
            let connected = if reads.is_empty() {
                "-".to_string()
            } else {
                reads.join(", ")
            };
            rows.push([
                format!("{} ({})", entry.name, entry.class),
                shape,
                grouped(params),
                connected,
            ]);
        }
        rows
    }
}

impl fmt::Display for KerasModel {
    /// The layers with their output shapes and parameter counts, as `model.summary()` prints
    /// them; for a functional model, also what each layer and op reads ("Connected to":
    /// `layer[call][output]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.summary_rows();
        let columns = if self.is_functional() { 4 } else { 3 };
        let headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"];
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([headers[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total_width = widths.iter().sum::<usize>() + 3 * (columns - 1);
        let rule = |c: char| format!("{}\n", c.to_string().repeat(total_width));
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| -> fmt::Result {
            let mut text = String::new();
            for c in 0..columns {
                let cell = cells[c];
                let pad = widths[c] - cell.chars().count();
                if c > 0 {
                    text.push_str("   ");
                }
                if c == 2 {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        writeln!(f, "Model: \"{}\"", self.name())?;
        write!(f, "{}", rule('='))?;
        line(f, headers)?;
        write!(f, "{}", rule('='))?;
        for (i, row) in rows.iter().enumerate() {
            line(f, [&row[0], &row[1], &row[2], &row[3]])?;
            if i + 1 < rows.len() {
                write!(f, "{}", rule('-'))?;
            }
        }
        write!(f, "{}", rule('='))?;
        let total = self.param_count();
        let fixed: usize = self.layers().iter().map(|l| l.non_trainable_count()).sum();
        let line = |count: usize| format!("{} ({})", grouped(count), human_bytes(count * 4));
        writeln!(f, " Total params: {}", line(total))?;
        writeln!(f, " Trainable params: {}", line(total - fixed))?;
        writeln!(f, " Non-trainable params: {}", line(fixed))
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
