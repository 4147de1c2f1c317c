//! `chart`: the suite's side-by-side figures (Confab and the Node `ws` peer) drawn as an
//! SVG bar chart for docs/PERFORMANCE.md, straight from the JSON `suite --json` wrote, so
//! the picture cannot drift from the run it claims to show. `scripts/bench.sh` draws it
//! after each suite.
//!
//! Only what both servers ran goes in: fan-out at the maximum (delivered msgs/s, higher is
//! better) and idle sockets (server memory per socket, lower is better), each pair with
//! Confab's ratio. The SVG backend writes text as `<text>` elements, so drawing needs no
//! font file and no fontconfig; the reader's browser sets the type.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct ChartArgs {
    /// The figures of one suite run (`confab-bench suite --json FILE`).
    #[arg(long)]
    pub json: PathBuf,
    /// Where to write the SVG.
    #[arg(long, default_value = "docs/bench-suite.svg")]
    pub out: PathBuf,
    /// Which run the figures come from, printed under the chart (date, commit, machine);
    /// by default the JSON file's name.
    #[arg(long)]
    pub caption: Option<String>,
}

const WIDTH: u32 = 960;
const HEIGHT: u32 = 480;
const NODE_COLOUR: RGBColor = RGBColor(0x9a, 0xa0, 0xa6);
/// The web client's accent colour (web/style.css `--accent`).
const CONFAB_COLOUR: RGBColor = RGBColor(0x2f, 0x5b, 0xd3);
const INK: RGBColor = RGBColor(0x1c, 0x1e, 0x21);
const MUTED: RGBColor = RGBColor(0x5f, 0x66, 0x70);
const FONT: &str = "sans-serif";

/// One server's look in the chart, and which of a pair's figures is its.
struct Side {
    name: &'static str,
    colour: RGBColor,
    /// Where its bar starts in a pair's slot (0 to 1).
    offset: f64,
    value: fn(&Pair) -> f64,
}

const SIDES: [Side; 2] = [
    Side {
        name: "Node ws",
        colour: NODE_COLOUR,
        offset: 0.12,
        value: |p| p.node,
    },
    Side {
        name: "Confab",
        colour: CONFAB_COLOUR,
        offset: 0.52,
        value: |p| p.confab,
    },
];

/// Which way a figure is good.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// One scenario both servers ran, with each one's headline figure.
#[derive(Debug, Clone, PartialEq)]
struct Pair {
    label: String,
    node: f64,
    confab: f64,
}

impl Pair {
    /// How many times better Confab did, whichever way "better" points.
    fn ratio(&self, better: Better) -> f64 {
        match better {
            Better::Higher => self.confab / self.node,
            Better::Lower => self.node / self.confab,
        }
    }
}

/// One panel of the chart: pairs sharing a unit.
#[derive(Debug, Clone, PartialEq)]
struct Panel {
    title: &'static str,
    better: Better,
    unit: Unit,
    pairs: Vec<Pair>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    PerSecond,
    Kib,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::PerSecond if v >= 1e6 => format!("{:.2} M", v / 1e6),
            Unit::PerSecond if v >= 1e3 => format!("{:.0} k", v / 1e3),
            Unit::PerSecond => format!("{v:.0}"),
            Unit::Kib => format!("{v:.1} KiB"),
        }
    }
}

pub fn run(args: &ChartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("cannot read {}", args.json.display()))?;
    let suite: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.json.display()))?;
    let panels = panels(&suite)
        .with_context(|| format!("in the suite figures of {}", args.json.display()))?;
    let caption = args
        .caption
        .clone()
        .unwrap_or_else(|| default_caption(&args.json));
    let svg = draw(&panels, &caption)?;
    std::fs::write(&args.out, svg)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("chart written to {}", args.out.display());
    Ok(())
}

fn default_caption(json: &Path) -> String {
    let name = json.file_name().map_or_else(
        || json.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("confab-bench suite, {name}")
}

/// The side-by-side pairs of a suite's JSON (an array of reports), in the suite's order.
fn panels(suite: &Value) -> anyhow::Result<Vec<Panel>> {
    let reports = suite
        .as_array()
        .context("expected an array of reports (`confab-bench suite --json`)")?;
    let mut fanout = Sides::default();
    let mut idle = Sides::default();
    for report in reports {
        let figures = &report["figures"];
        let Some(peer) = report["peer"].as_str() else {
            continue;
        };
        match report["scenario"].as_str() {
            // At the maximum (the rate is "max/w4"), messages only (no edit/reaction mix).
            Some("fanout")
                if figures["rate"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("max"))
                    && figures.get("changes every").is_none() =>
            {
                let (Some(members), Some(publishers)) =
                    (figures["members"].as_u64(), figures["publishers"].as_u64())
                else {
                    continue;
                };
                let label = format!(
                    "{} members, {} sending",
                    thousands(members),
                    thousands(publishers)
                );
                fanout.record(label, peer, figures["delivered/s"].as_f64());
            }
            Some("idle") => {
                let Some(sockets) = figures["sockets"].as_u64() else {
                    continue;
                };
                let label = format!("{} idle sockets", thousands(sockets));
                idle.record(label, peer, figures["KiB/socket"].as_f64());
            }
            _ => {}
        }
    }
    let panels: Vec<Panel> = [
        Panel {
            title: "Delivered messages per second (higher is better)",
            better: Better::Higher,
            unit: Unit::PerSecond,
            pairs: fanout.pairs(),
        },
        Panel {
            title: "Memory per idle socket (lower is better)",
            better: Better::Lower,
            unit: Unit::Kib,
            pairs: idle.pairs(),
        },
    ]
    .into_iter()
    .filter(|p| !p.pairs.is_empty())
    .collect();
    anyhow::ensure!(
        !panels.is_empty(),
        "no scenario ran against both confab and node-ws"
    );
    Ok(panels)
}

/// Figures per scenario label and peer, in the order the labels first appear.
#[derive(Default)]
struct Sides(Vec<(String, Option<f64>, Option<f64>)>);

impl Sides {
    fn record(&mut self, label: String, peer: &str, value: Option<f64>) {
        let index = match self.0.iter().position(|(l, _, _)| *l == label) {
            Some(i) => i,
            None => {
                self.0.push((label, None, None));
                self.0.len() - 1
            }
        };
        let slot = &mut self.0[index];
        match peer {
            "node-ws" => slot.1 = value,
            "confab" => slot.2 = value,
            _ => {}
        }
    }

    /// Only scenarios with a positive figure from both sides (a ratio needs both).
    fn pairs(self) -> Vec<Pair> {
        self.0
            .into_iter()
            .filter_map(|(label, node, confab)| match (node, confab) {
                (Some(node), Some(confab)) if node > 0.0 && confab > 0.0 => Some(Pair {
                    label,
                    node,
                    confab,
                }),
                _ => None,
            })
            .collect()
    }
}

fn thousands(n: u64) -> String {
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

/// The whole chart as SVG text: a title, one panel per unit side by side (widths by their
/// number of pairs), and the caption saying which run it shows.
fn draw(panels: &[Panel], caption: &str) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let body = root
            .titled(
                "Confab and Node ws on the same machine, same scenarios",
                (FONT, 26).into_font().color(&INK),
            )
            .map_err(plot_error)?;
        let (body, foot) = body.split_vertically(HEIGHT - 84);
        // The legend, then the caption, under the panels (in a panel it would cover bars).
        let mut x = 24;
        for side in SIDES {
            foot.draw(&Rectangle::new(
                [(x, 8), (x + 16, 24)],
                side.colour.filled(),
            ))
            .map_err(plot_error)?;
            foot.draw(&Text::new(
                side.name,
                (x + 24, 7),
                (FONT, 18).into_font().color(&INK),
            ))
            .map_err(plot_error)?;
            x += 140;
        }
        foot.draw(&Text::new(
            caption.to_owned(),
            (24, 40),
            (FONT, 16).into_font().color(&MUTED),
        ))
        .map_err(plot_error)?;
        let mut rest = body;
        for (i, panel) in panels.iter().enumerate() {
            let area = if i + 1 == panels.len() {
                rest.clone()
            } else {
                let width = rest.dim_in_pixel().0 as usize * panel.pairs.len()
                    / panels[i..].iter().map(|p| p.pairs.len()).sum::<usize>();
                let (left, right) = rest.split_horizontally(width as u32);
                rest = right;
                left
            };
            draw_panel(&area, panel)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn draw_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &Panel) -> anyhow::Result<()> {
    let n = panel.pairs.len();
    let top = panel
        .pairs
        .iter()
        .map(|p| p.node.max(p.confab))
        .fold(0.0, f64::max);
    let unit = panel.unit;
    let y_label = move |y: &f64| unit.format(*y);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 19).into_font().color(&INK))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..n as f64, 0f64..top * 1.25)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xe4, 0xe7, 0xeb))
        .axis_style(MUTED)
        .x_labels(0)
        .y_labels(5)
        .y_label_formatter(&y_label)
        .y_label_style((FONT, 15).into_font().color(&MUTED))
        .draw()
        .map_err(plot_error)?;

    let value_style = (FONT, 15)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    // Each scenario's name under its pair of bars, a few pixels below the axis (plotters
    // puts axis labels at its own round numbers, not at the pairs).
    let name_style = (FONT, 17)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    chart
        .draw_series(panel.pairs.iter().enumerate().map(|(i, p)| {
            EmptyElement::at((i as f64 + 0.5, 0.0))
                + Text::new(p.label.clone(), (0, 10), name_style.clone())
        }))
        .map_err(plot_error)?;
    for Side {
        colour,
        offset,
        value,
        ..
    } in SIDES
    {
        chart
            .draw_series(panel.pairs.iter().enumerate().map(|(i, p)| {
                let x0 = i as f64 + offset;
                Rectangle::new([(x0, 0.0), (x0 + 0.36, value(p))], colour.filled())
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(panel.pairs.iter().enumerate().map(|(i, p)| {
                let v = value(p);
                Text::new(
                    unit.format(v),
                    (i as f64 + offset + 0.18, v),
                    value_style.clone(),
                )
            }))
            .map_err(plot_error)?;
    }
    let ratio_style = (FONT, 20)
        .into_font()
        .style(FontStyle::Bold)
        .color(&CONFAB_COLOUR)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart
        .draw_series(panel.pairs.iter().enumerate().map(|(i, p)| {
            let r = p.ratio(panel.better);
            let text = match panel.better {
                Better::Higher => format!("Confab {r:.1}×"),
                Better::Lower => format!("Confab {r:.1}× less"),
            };
            Text::new(text, (i as f64 + 0.5, top * 1.17), ratio_style.clone())
        }))
        .map_err(plot_error)?;
    Ok(())
}

/// plotters' errors borrow the backend; the message is all that is worth keeping.
fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the chart: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A suite's JSON cut down to what the chart reads, plus reports it must leave out.
    fn fixture() -> Value {
        let fanout = |peer: &str, members: u64, publishers: u64, rate: Value, delivered: u64| {
            json!({"scenario": "fanout", "peer": peer, "figures": {
                "server": peer, "members": members, "publishers": publishers,
                "rate": rate, "delivered/s": delivered, "p99 ms": 5.0}})
        };
        json!([
            fanout("node-ws", 32, 32, json!("max/w4"), 80_000),
            fanout("confab", 32, 32, json!("max/w4"), 1_250_000),
            // Confab alone at a fixed rate: no pair, left out.
            fanout("confab", 32, 32, json!(19_000.0), 600_000),
            fanout("node-ws", 1000, 10, json!("max/w4"), 91_000),
            fanout("confab", 1000, 10, json!("max/w4"), 1_960_000),
            {"scenario": "fanout", "peer": "confab", "figures": {"members": 32,
                "publishers": 32, "rate": "max/w4", "changes every": 8, "delivered/s": 2_000_000}},
            {"scenario": "idle", "peer": "node-ws", "figures": {"sockets": 15000, "KiB/socket": 6.3}},
            {"scenario": "idle", "peer": "confab", "figures": {"sockets": 15000, "KiB/socket": 3.8}},
            {"scenario": "storm", "peer": "confab", "figures": {"sessions/s": 8000}},
        ])
    }

    #[test]
    fn only_what_both_servers_ran_is_paired() {
        let panels = panels(&fixture()).expect("panels");
        assert_eq!(panels.len(), 2);
        assert_eq!(
            panels[0].pairs,
            vec![
                Pair {
                    label: "32 members, 32 sending".into(),
                    node: 80_000.0,
                    confab: 1_250_000.0
                },
                Pair {
                    label: "1,000 members, 10 sending".into(),
                    node: 91_000.0,
                    confab: 1_960_000.0
                },
            ]
        );
        assert_eq!(panels[1].pairs.len(), 1);
        assert_eq!(panels[1].pairs[0].label, "15,000 idle sockets");
        assert!((panels[1].pairs[0].ratio(Better::Lower) - 6.3 / 3.8).abs() < 1e-9);
    }

    #[test]
    fn the_svg_has_a_bar_per_value_and_says_what_they_are() {
        let svg = draw(
            &panels(&fixture()).expect("panels"),
            "fixture, not a measurement",
        )
        .expect("svg");
        let bars = |colour: RGBColor| {
            let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", colour.0, colour.1, colour.2);
            svg.lines()
                .filter(|l| l.contains("<rect") && l.contains(&fill))
                .count()
        };
        // Three pairs, a bar per side each, and the legend's swatch of each side.
        assert_eq!(bars(NODE_COLOUR), 3 + 1, "{svg}");
        assert_eq!(bars(CONFAB_COLOUR), 3 + 1, "{svg}");
        for text in [
            "32 members, 32 sending",
            "1,000 members, 10 sending",
            "15,000 idle sockets",
            "Node ws",
            "Confab",
            "80 k",
            "1.25 M",
            "1.96 M",
            "6.3 KiB",
            "3.8 KiB",
            "Confab 15.6×",
            "Confab 21.5×",
            "Confab 1.7× less",
            "fixture, not a measurement",
        ] {
            // plotters writes each text element's content on a line of its own.
            assert!(
                svg.contains(&format!("\n{text}\n</text>")),
                "no text {text:?} in\n{svg}"
            );
        }
        // Text stays text: nothing was rasterised, so no font was needed.
        assert!(!svg.contains("<image"));
    }

    /// The figures the committed docs/bench-suite.svg was first drawn from (re-entered from
    /// docs/PERFORMANCE.md): they must keep drawing, and say they are not a measurement.
    #[test]
    fn the_fixture_from_the_docs_draws() {
        let suite: Value = serde_json::from_str(include_str!(
            "../fixtures/suite-20261126T0702Z-from-docs.json"
        ))
        .expect("JSON");
        for report in suite.as_array().expect("an array") {
            assert!(
                report["fixture"]
                    .as_str()
                    .expect("a note")
                    .contains("not a new measurement")
            );
        }
        let panels = panels(&suite).expect("panels");
        let counts: Vec<usize> = panels.iter().map(|p| p.pairs.len()).collect();
        assert_eq!(counts, [2, 1]);
        assert!(
            draw(&panels, "x")
                .expect("svg")
                .contains("\nConfab 15.7×\n")
        );
    }

    #[test]
    fn a_suite_without_the_peer_is_refused() {
        let only_confab = json!([{"scenario": "idle", "peer": "confab",
            "figures": {"sockets": 10, "KiB/socket": 3.8}}]);
        assert!(panels(&only_confab).is_err());
        assert!(panels(&json!({"scenario": "idle"})).is_err());
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(15_000), "15,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(Unit::PerSecond.format(1_253_498.0), "1.25 M");
        assert_eq!(Unit::PerSecond.format(79_799.0), "80 k");
        assert_eq!(Unit::Kib.format(3.8), "3.8 KiB");
    }
}
