//! Units the two sides' configuration files share: the site file (`backend`) and profiles and
//! command lines (`loadgen`) write spans of time the same way.

use std::time::Duration;

/// `"90s"`, `"15m"`, `"1h"`, `"1.5h"`, `"90d"`: a positive span (seconds, minutes, hours,
/// days), below a trillion seconds. Anything else is `None`.
pub fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let secs = n * match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    (secs > 0.0 && secs.is_finite() && secs < 1e12).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_span(" 15m "), Some(Duration::from_secs(900)));
        assert_eq!(parse_span("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_span("90d"), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_span("0s"), None);
        assert_eq!(parse_span("5 weeks"), None);
        assert_eq!(parse_span("10"), None, "a unit is required");
        assert_eq!(parse_span("1e30d"), None);
    }
}
