//! Cron expressions in words, for the Recurring jobs page ("Every 5 minutes", "At 03:00, Monday
//! through Friday"). Expressions it cannot phrase are shown as they are.

const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

fn number(field: &str) -> Option<u32> {
    field.parse().ok()
}

fn step(field: &str) -> Option<u32> {
    field.strip_prefix("*/").and_then(number).filter(|n| *n > 0)
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 { format!("every {unit}") } else { format!("every {n} {unit}s") }
}

fn day_name(field: &str) -> Option<String> {
    if let Ok(n) = field.parse::<usize>() {
        return DAYS.get(n % 7).map(|d| (*d).to_owned());
    }
    let lower = field.to_ascii_lowercase();
    DAYS.iter().find(|d| d.to_ascii_lowercase().starts_with(&lower) && lower.len() >= 3).map(|d| (*d).to_owned())
}

fn month_name(field: &str) -> Option<String> {
    if let Ok(n) = field.parse::<usize>() {
        return n.checked_sub(1).and_then(|i| MONTHS.get(i)).map(|m| (*m).to_owned());
    }
    let lower = field.to_ascii_lowercase();
    MONTHS.iter().find(|m| m.to_ascii_lowercase().starts_with(&lower) && lower.len() >= 3).map(|m| (*m).to_owned())
}

/// A list of names (`1-5` → "Monday through Friday", `1,3` → "Monday and Wednesday").
fn names(field: &str, name: fn(&str) -> Option<String>) -> Option<String> {
    let mut parts = Vec::new();
    for item in field.split(',') {
        if let Some((a, b)) = item.split_once('-') {
            parts.push(format!("{} through {}", name(a)?, name(b)?));
        } else {
            parts.push(name(item)?);
        }
    }
    Some(match parts.len() {
        0 => return None,
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    })
}

/// The expression in words, or `None` if it is not one of the shapes this knows.
pub fn describe(expression: &str) -> Option<String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let (sec, min, hour, dom, mon, dow) = match fields.as_slice() {
        [m, h, d, mo, w] => ("0", *m, *h, *d, *mo, *w),
        [s, m, h, d, mo, w] | [s, m, h, d, mo, w, _] => (*s, *m, *h, *d, *mo, *w),
        _ => return None,
    };
    if fields.len() == 7 && fields[6] != "*" {
        return None;
    }
    let any = |f: &str| f == "*" || f == "?";
    let time = match (number(sec), number(min), number(hour)) {
        (Some(0), Some(m), Some(h)) => format!("At {h:02}:{m:02}"),
        (Some(s), Some(m), Some(h)) => format!("At {h:02}:{m:02}:{s:02}"),
        (Some(0), Some(m), None) if any(hour) => {
            if m == 0 {
                "Every hour".to_owned()
            } else {
                format!("At minute {m} of every hour")
            }
        }
        (Some(0), Some(m), None) => format!("At minute {m}, {}", plural(step(hour)?, "hour")),
        (Some(0), None, None) if any(min) && any(hour) => "Every minute".to_owned(),
        (Some(0), None, None) if any(hour) => capitalise(&plural(step(min)?, "minute")),
        (None, _, _) if any(min) && any(hour) && (any(sec) || step(sec).is_some()) => {
            capitalise(&plural(if any(sec) { 1 } else { step(sec)? }, "second"))
        }
        _ => return None,
    };
    let mut out = time;
    if !any(dow) {
        out.push_str(", ");
        out.push_str(&names(dow, day_name)?);
    }
    if !any(dom) {
        out.push_str(&format!(", on day {} of the month", dom.replace(',', ", ")));
        if number(dom).is_none() && dom.chars().any(|c| !c.is_ascii_digit() && c != ',' && c != '-') {
            return None;
        }
    }
    if !any(mon) {
        out.push_str(", in ");
        out.push_str(&names(mon, month_name)?);
    }
    Some(out)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_shapes_read_as_words() {
        let cases = [
            ("* * * * *", "Every minute"),
            ("*/5 * * * *", "Every 5 minutes"),
            ("0 * * * *", "Every hour"),
            ("15 * * * *", "At minute 15 of every hour"),
            ("0 3 * * *", "At 03:00"),
            ("30 8 * * 1-5", "At 08:30, Monday through Friday"),
            ("0 0 1 * *", "At 00:00, on day 1 of the month"),
            ("0 12 * * sun", "At 12:00, Sunday"),
            ("*/10 * * * * *", "Every 10 seconds"),
            ("0 0 6 * * *", "At 06:00"),
            ("0 0 */2 * * *", "At minute 0, every 2 hours"),
            ("0 9 * 1,7 *", "At 09:00, in January and July"),
        ];
        for (expr, words) in cases {
            assert_eq!(describe(expr).as_deref(), Some(words), "{expr}");
        }
        assert_eq!(describe("nonsense"), None);
        assert_eq!(describe("1-5/2 3,4 * * *"), None);
    }
}
