//! Printing: plain aligned tables, and the checks — each figure next to its target, PASS or MISS.

use serde_json::{Value, json};

/// A bound a figure must keep.
#[derive(Clone, Copy)]
pub enum Limit {
    AtMost(f64),
    AtLeast(f64),
    Below(f64),
}

/// A noise band around a figure of another scenario: the target is `factor × baseline + plus`.
pub struct Band {
    /// What the baseline is, in a few words.
    pub name: String,
    pub baseline: f64,
    pub factor: f64,
    /// In the check's unit.
    pub plus: f64,
}

impl Band {
    fn limit(&self) -> f64 {
        self.baseline * self.factor + self.plus
    }
}

/// One figure of the work item, measured for the gateway (and, where it means something, directly
/// against the mock), with its target.
pub struct Check {
    pub figure: String,
    pub unit: &'static str,
    pub direct: Option<f64>,
    pub gateway: f64,
    /// Gateway minus direct, when that is what the target bounds.
    pub added: Option<f64>,
    /// A figure of another scenario, named, when the target bounds the gateway figure as a multiple
    /// of it.
    pub relative_to: Option<(String, f64)>,
    /// When the target is "within noise of another figure": the band (`limit` is its upper edge).
    pub band: Option<Band>,
    /// Why the figure cannot be trusted whatever its value (the run did not measure what it says):
    /// the check is then a MISS.
    pub invalid: Option<String>,
    pub limit: Limit,
    pub decimals: usize,
    /// What the target means, in a few words, when the bound alone does not say.
    pub note: String,
}

impl Check {
    pub fn new(figure: impl Into<String>, unit: &'static str, decimals: usize, limit: Limit, gateway: f64) -> Self {
        Self {
            figure: figure.into(),
            unit,
            direct: None,
            gateway,
            added: None,
            relative_to: None,
            band: None,
            invalid: None,
            limit,
            decimals,
            note: String::new(),
        }
    }

    /// The same figure measured directly against the mock.
    pub fn direct(mut self, v: f64) -> Self {
        self.direct = Some(v);
        self
    }

    /// The target bounds what the gateway adds to the direct figure (set `direct` first).
    pub fn judge_added(mut self) -> Self {
        self.added = self.direct.map(|d| self.gateway - d);
        self
    }

    /// The target bounds the gateway figure divided by `baseline` (`name` says what that is).
    pub fn judge_ratio_to(mut self, name: impl Into<String>, baseline: f64) -> Self {
        self.relative_to = Some((name.into(), baseline));
        self
    }

    /// The target is at most `factor × baseline + plus` (`name` says what the baseline is); replaces
    /// the limit given to `new`.
    pub fn judge_within_band(mut self, name: impl Into<String>, baseline: f64, factor: f64, plus: f64) -> Self {
        let band = Band { name: name.into(), baseline, factor, plus };
        self.limit = Limit::AtMost(band.limit());
        self.band = Some(band);
        self
    }

    /// Marks the figure as not measuring what it says (`why`): a MISS whatever its value.
    pub fn invalid_if(mut self, why: Option<String>) -> Self {
        self.invalid = why;
        self
    }

    /// The gateway figure as a multiple of the baseline, when the target bounds that.
    fn ratio(&self) -> Option<f64> {
        self.relative_to.as_ref().map(|(_, baseline)| self.gateway / baseline)
    }

    pub fn note(mut self, note: String) -> Self {
        self.note = note;
        self
    }

    /// The figure the target applies to: the ratio or the added amount where there is one, else the
    /// gateway's.
    fn judged(&self) -> f64 {
        self.ratio().or(self.added).unwrap_or(self.gateway)
    }

    pub fn pass(&self) -> bool {
        if self.invalid.is_some() {
            return false;
        }
        let v = self.judged();
        match self.limit {
            Limit::AtMost(l) => v <= l,
            Limit::AtLeast(l) => v >= l,
            Limit::Below(l) => v < l,
        }
    }

    fn target(&self) -> String {
        let (op, l) = match self.limit {
            Limit::AtMost(l) => ("≤", l),
            Limit::AtLeast(l) => ("≥", l),
            Limit::Below(l) => ("<", l),
        };
        let what = if self.added.is_some() { "added " } else { "" };
        let note = if self.note.is_empty() { String::new() } else { format!(" ({})", self.note) };
        let invalid = self.invalid.as_ref().map_or(String::new(), |why| format!("; INVALID: {why}"));
        let f = |v: f64| group(v, self.decimals);
        let target = match (&self.relative_to, self.ratio(), &self.band) {
            (Some((name, baseline)), Some(ratio), _) => {
                let l = if l.fract() == 0.0 { group(l, 0) } else { l.to_string() };
                format!("{op} {l} × {name} ({} {}): {ratio:.2}×{note}", f(*baseline), self.unit)
            }
            (_, _, Some(b)) => {
                let diff = self.gateway - b.baseline;
                // A band of the baseline itself plus an amount reads `≤ chat (41.0 µs) + 10 µs`.
                let factor = if b.factor == 1.0 { String::new() } else { format!("{} × ", b.factor) };
                format!(
                    "{op} {factor}{} ({} {u}) + {} {u} = {} {u}; difference {}{} {u} ({:+.1}%){note}",
                    b.name,
                    f(b.baseline),
                    b.plus,
                    f(l),
                    if diff >= 0.0 { "+" } else { "" },
                    f(diff),
                    diff / b.baseline * 100.0,
                    u = self.unit,
                )
            }
            _ => {
                let l = if l.fract() == 0.0 { group(l, 0) } else { l.to_string() };
                format!("{what}{op} {l} {}{note}", self.unit)
            }
        };
        target + &invalid
    }

    fn row(&self) -> Vec<String> {
        let f = |v: f64| group(v, self.decimals);
        vec![
            self.figure.clone(),
            self.direct.map_or("-".into(), f),
            // Not a number: nothing was measured (the check says why).
            if self.gateway.is_finite() { f(self.gateway) } else { "-".into() },
            self.added.map_or("-".into(), |a| format!("{}{}", if a >= 0.0 { "+" } else { "" }, f(a))),
            self.target(),
            if self.pass() { "PASS" } else { "MISS" }.into(),
        ]
    }

    pub fn to_json(&self) -> Value {
        let (kind, limit) = match self.limit {
            Limit::AtMost(l) => ("at_most", l),
            Limit::AtLeast(l) => ("at_least", l),
            Limit::Below(l) => ("below", l),
        };
        let scale = 10f64.powi(self.decimals as i32);
        let round = |v: f64| (v * scale).round() / scale;
        // A band's edge is computed (42.0 × 1.05 + 2 = 46.100000000000001): written as printed.
        let limit = if self.band.is_some() { round(limit) } else { limit };
        let applies_to = match (&self.relative_to, &self.added) {
            (Some((name, _)), _) => format!("gateway / {name}"),
            (None, Some(_)) => "added".into(),
            (None, None) => "gateway".into(),
        };
        let mut v = json!({
            "figure": self.figure, "unit": self.unit,
            "direct": self.direct.map(round), "gateway": round(self.gateway), "added": self.added.map(round),
            "target": {kind: limit, "applies_to": applies_to},
            "pass": self.pass(),
        });
        if let (Some((name, baseline)), Some(ratio)) = (&self.relative_to, self.ratio()) {
            v["baseline"] = json!({"figure": name, "value": round(*baseline)});
            v["ratio"] = json!((ratio * 1000.0).round() / 1000.0);
        }
        if let Some(b) = &self.band {
            v["baseline"] = json!({"figure": b.name, "value": round(b.baseline)});
            v["band"] = json!({"factor": b.factor, "plus": b.plus, "limit": round(b.limit())});
            v["difference"] = json!(round(self.gateway - b.baseline));
        }
        if let Some(why) = &self.invalid {
            v["invalid"] = json!(why);
        }
        v
    }
}

/// Prints the checks as a table.
pub fn print_checks(checks: &[Check]) {
    let rows: Vec<Vec<String>> = checks.iter().map(Check::row).collect();
    table(&["figure", "direct", "gateway", "added", "target", "result"], &[0, 4], &rows);
}

/// Prints an aligned table: columns listed in `left` are left-aligned, the others right-aligned.
pub fn table(header: &[&str], left: &[usize], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if left.contains(&i) { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        println!("  {}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A number with `decimals` places and thousands separated by commas (12,345.6).
pub fn group(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') { format!("-{out}") } else { out }
}

/// Milliseconds with three decimals, from microseconds.
pub fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}
