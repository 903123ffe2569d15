//! A plain table written as CSV, Markdown and JSON.

use crate::error::{Error, Result};
use crate::formats::atomic_write;
use std::path::Path;

/// Header and rows of strings (an empty cell: no value; CSV leaves it empty so that numeric
/// columns parse as numbers, Markdown and HTML show `-`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The machine-readable rows written as `<stem>.json` instead of the header-keyed
    /// strings (stage tables keep their summary keys and typed values there).
    #[serde(skip)]
    pub json: Option<serde_json::Value>,
}

/// A JSON scalar as a table cell (floats to 6 significant digits).
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format_sig(f, 6),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

pub use crate::formats::format_sig;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Table {
    pub fn to_csv(&self) -> String {
        let mut out = self
            .header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for r in &self.rows {
            out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                r.iter()
                    .map(|c| if c.is_empty() { "-".into() } else { esc(c) })
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        if let Some(j) = &self.json {
            return j.clone();
        }
        serde_json::Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    serde_json::Value::Object(
                        self.header
                            .iter()
                            .cloned()
                            .zip(r.iter().map(|c| {
                                if c.is_empty() {
                                    serde_json::Value::Null
                                } else {
                                    serde_json::Value::String(c.clone())
                                }
                            }))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// Writes `<stem>.csv`, `<stem>.md` and `<stem>.json` into `dir`.
    pub fn write_all(&self, dir: &Path, stem: &str) -> Result<()> {
        atomic_write(&dir.join(format!("{stem}.csv")), self.to_csv().as_bytes())?;
        atomic_write(
            &dir.join(format!("{stem}.md")),
            self.to_markdown().as_bytes(),
        )?;
        let json = serde_json::to_vec_pretty(&self.to_json())
            .map_err(|e| Error::Internal(e.to_string()))?;
        atomic_write(&dir.join(format!("{stem}.json")), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_sig(0.123456789, 3), "0.123");
        assert_eq!(format_sig(1234.5678, 6), "1234.57");
        assert_eq!(format_sig(2.2e-14, 3), "2.20e-14");
        let t = Table {
            header: vec!["a".into(), "b|c".into()],
            rows: vec![vec!["1".into(), "x,y".into()]],
            json: None,
        };
        assert_eq!(t.to_csv(), "a,b|c\n1,\"x,y\"\n");
        assert!(
            t.to_markdown()
                .starts_with("| a | b\\|c |\n|---|---|\n| 1 | x,y |")
        );
    }
}
