//! `--log-format json`: one JSON object per line, in the shape log shippers (Vector,
//! Fluent Bit, Promtail, Loki) map without a rule per key:
//!
//! ```json
//! {"time":"…Z","level":"INFO","target":"confab_server::http::request_id","message":"request","fields":{"request_id":"abc-123","method":"GET","path":"/api/me","status":401,"ms":0}}
//! ```
//!
//! `fields` holds the event's own fields and those of the spans it happened in (an HTTP
//! request's `request_id`), so one key finds the request id on every line of a request;
//! when a span and the event name the same field, the event's wins.
//!
//! Why not `tracing-subscriber`'s own JSON format: it puts the message among the fields,
//! and the spans' fields apart from the event's (`span`, `spans`), so a shipper needs a
//! rule per key to find the message and the request id. The machinery stays its own:
//! span fields are recorded by its `JsonFields`, and this formatter only lays out the
//! line.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The event formatter of `--log-format json` (see the module docs). Use it with
/// `JsonFields` as the field formatter, so the spans' fields are JSON too.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(Ok(Value::Object(recorded))) = extensions
                    .get::<FormattedFields<N>>()
                    .map(|f| serde_json::from_str::<Value>(&f.fields))
                {
                    fields.extend(recorded);
                }
            }
        }
        let mut visitor = Fields {
            message: String::new(),
            fields,
        };
        event.record(&mut visitor);
        let meta = event.metadata();
        let line = Line {
            time: &time,
            level: meta.level().as_str(),
            target: meta.target(),
            message: &visitor.message,
            fields: &visitor.fields,
        };
        // Serializing strings and a map of JSON values cannot fail.
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// One line, its keys in this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    time: &'a str,
    level: &'a str,
    target: &'a str,
    message: &'a str,
    fields: &'a Map<String, Value>,
}

/// Collects an event's message and fields.
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: null, as serde_json writes them.
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The message (format arguments) and `%` values (their `Display`) come here.
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex, PoisonError},
    };

    use tracing_subscriber::fmt::{MakeWriter, format::JsonFields};

    use super::*;

    /// Lines written, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn output_of(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn lines_of(log: impl FnOnce()) -> Vec<Value> {
        output_of(log)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_time_level_target_message_and_the_fields_of_the_event_and_its_spans() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("request", request_id = "abc-123", status = 1);
            let _in = span.enter();
            tracing::warn!(status = 401, ms = 0.5, ok = false, who = %"ada", "request {}", "done");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["message"], "request done");
        assert_eq!(
            line["fields"],
            serde_json::json!({"request_id": "abc-123", "status": 401, "ms": 0.5, "ok": false, "who": "ada"})
        );
        assert_eq!(
            line.as_object().map(Map::len),
            Some(5),
            "nothing else: {line}"
        );
        // In the order people read: when, how bad, where, what, the details.
        let raw = output_of(|| tracing::info!(n = 1, "x"));
        let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
        assert!(
            at("time") < at("level")
                && at("level") < at("target")
                && at("target") < at("message")
                && at("message") < at("fields"),
            "{raw}"
        );
    }

    #[test]
    fn a_line_break_in_a_value_stays_inside_its_line() {
        let lines = lines_of(|| tracing::info!(name = "a\n{\"level\":\"ERROR\"}", "signed up"));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["fields"]["name"], "a\n{\"level\":\"ERROR\"}");
    }
}
