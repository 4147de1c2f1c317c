//! When a message was sent, as the reader's clock and calendar say: the time shown by
//! it, and the day whose divider it falls under ("Today", "Yesterday", or the date).
//! One `Date` per message, made once per render of the list.

use wasm_bindgen::JsValue;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A message's time in the reader's zone.
pub struct LocalTime {
    /// `HH:MM`.
    pub short: String,
    /// The full date and time, for the tooltip and `datetime`.
    pub full: String,
    /// Days since the epoch in the reader's zone: equal for two times on the same
    /// local calendar day.
    pub day: i64,
}

impl LocalTime {
    pub fn of(ts: i64) -> Self {
        let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
        Self {
            short: format!("{:02}:{:02}", date.get_hours(), date.get_minutes()),
            full: String::from(date.to_string()),
            day: local_day(ts, date.get_timezone_offset()),
        }
    }
}

/// The local day of `ts`, for a zone `offset_minutes` behind UTC (what
/// `Date.getTimezoneOffset` says at that moment, so summer time counts).
pub fn local_day(ts: i64, offset_minutes: f64) -> i64 {
    let local = ts - (offset_minutes * 60_000.0) as i64;
    local.div_euclid(DAY_MS)
}

/// The local day it is now.
pub fn today() -> i64 {
    let now = js_sys::Date::now();
    local_day(now as i64, js_sys::Date::new_0().get_timezone_offset())
}

/// What a day divider says: relative for the last two days, the date before that.
/// `ts` is any time on `day`, to write the date from.
pub fn day_label(day: i64, today: i64, ts: i64) -> String {
    match relative_day(day, today) {
        Some(word) => word.to_owned(),
        None => {
            let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
            let options = js_sys::Object::new();
            for (key, value) in [
                ("weekday", "long"),
                ("year", "numeric"),
                ("month", "long"),
                ("day", "numeric"),
            ] {
                let _ = js_sys::Reflect::set(&options, &key.into(), &value.into());
            }
            String::from(date.to_locale_date_string("default", &options))
        }
    }
}

fn relative_day(day: i64, today: i64) -> Option<&'static str> {
    match today - day {
        0 => Some("Today"),
        1 => Some("Yesterday"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_follow_the_readers_zone_not_utc() {
        // 2025-03-01T23:30:00Z.
        let ts = 1_740_871_800_000;
        let utc = local_day(ts, 0.0);
        assert_eq!(local_day(ts, -60.0), utc + 1, "already the 2nd in Paris");
        assert_eq!(local_day(ts, 300.0), utc, "still the 1st in New York");
        assert_eq!(local_day(ts - 23 * 3_600_000, 0.0), utc, "the same UTC day");
        assert_eq!(local_day(-1, 0.0), -1, "before 1970 too");
    }

    #[test]
    fn the_last_two_days_are_named_relatively() {
        assert_eq!(relative_day(100, 100), Some("Today"));
        assert_eq!(relative_day(99, 100), Some("Yesterday"));
        assert_eq!(relative_day(98, 100), None);
        assert_eq!(relative_day(101, 100), None, "a clock behind the server's");
    }
}
