//! `suite`: the whole benchmark in one run, Confab and the Node `ws` peer side by side
//! (same machine, same scenario, same pinning, one after the other), ending with the
//! table of docs/PERFORMANCE.md and the ratios. The chat room with edits and reactions
//! runs against Confab only: the peer speaks no edits.

use anyhow::Context;
use clap::Args;

use crate::{
    CommonArgs,
    cluster::{self, ClusterArgs},
    durable::{self, DurableArgs},
    fanout::{self, FanoutArgs},
    floor::{self, FloorArgs},
    idle::{self, IdleArgs},
    pin::Placement,
    report::Report,
    resumestorm::{self, ResumeStormArgs},
    roomstorm::{self, RoomStormArgs},
    server::Peer,
    storm::{self, StormArgs},
};

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// Measured seconds of each fan-out and durable run.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Sockets of the idle scenario.
    #[arg(long, default_value_t = 15_000)]
    pub idle_sockets: usize,
    /// Every scenario as a seconds-long smoke run (for CI): does it work, not how fast.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A fan-out shape of the table.
struct Shape {
    name: &'static str,
    members: usize,
    publishers: usize,
}

const CHAT_ROOM: Shape = Shape {
    name: "32-client chat room",
    members: 32,
    publishers: 32,
};
const BIG_ROOM: Shape = Shape {
    name: "1 room × 1,000 subscribers, 10 senders",
    members: 1000,
    publishers: 10,
};
/// The chat room with the edit/reaction mix: an edit and a reaction added or taken back
/// per 8 messages of each publisher, so one change per 4 messages.
const CHAT_ROOM_CHANGES: Shape = Shape {
    name: "32-client chat room, edits and reactions",
    ..CHAT_ROOM
};
const CHANGES_EVERY: u64 = 8;

pub async fn run(args: SuiteArgs, placement: Option<Placement>) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    let mut lines = Vec::new();
    let mut big_room_half = 1.0;
    for shape in [CHAT_ROOM, BIG_ROOM] {
        let mut delivered = [0.0; 2];
        for (i, peer) in [Peer::NodeWs, Peer::Confab].into_iter().enumerate() {
            let report = fanout::run(fanout_args(&args, peer, &shape, None), placement).await?;
            report.print_table();
            delivered[i] = number(&report, "delivered/s")?;
            reports.push(report);
        }
        lines.push(format!(
            "{:<40} node-ws {:>10.0}  confab {:>10.0}  delivered msgs/s  ratio {:.1}×",
            shape.name,
            delivered[0],
            delivered[1],
            delivered[1] / delivered[0]
        ));
        // Latency at half of Confab's maximum: the load it should carry comfortably.
        let published = delivered[1] / shape.members as f64;
        let half = (published / 2.0).max(1.0);
        if shape.members == BIG_ROOM.members {
            big_room_half = half;
        }
        let report = fanout::run(
            fanout_args(&args, Peer::Confab, &shape, Some(half)),
            placement,
        )
        .await?;
        report.print_table();
        lines.push(format!(
            "{:<40} confab at {:.0} msgs/s published (half of max): p99 {} ms",
            shape.name,
            half,
            number(&report, "p99 ms")?
        ));
        reports.push(report);
    }
    println!(
        "\n{}: Confab only (the Node `ws` peer does not speak edits or reactions)",
        CHAT_ROOM_CHANGES.name
    );
    let report = fanout::run(
        FanoutArgs {
            changes_every: Some(CHANGES_EVERY),
            ..fanout_args(&args, Peer::Confab, &CHAT_ROOM_CHANGES, None)
        },
        placement,
    )
    .await?;
    report.print_table();
    lines.push(format!(
        "{:<40} confab {:>10.0} delivered/s = {:.0} msgs/s + {:.0} changes/s (one per 4 \
         messages); p99 {} ms, edits p99 {} ms",
        CHAT_ROOM_CHANGES.name,
        number(&report, "delivered/s")?,
        number(&report, "msgs/s")?,
        number(&report, "changes/s")?,
        number(&report, "p99 ms")?,
        number(&report, "edit p99 ms")?
    ));
    reports.push(report);
    // What no server can beat in the big room on this machine: one core writing each
    // frame to every subscriber in turn, with nothing else to do, at a low rate (one
    // message per sweep) and at the half-of-max rate measured above.
    for rate in [50.0, big_room_half] {
        let report = floor::run(
            FloorArgs {
                sockets: BIG_ROOM.members,
                rate,
                duration_secs: args.duration_secs.min(5),
                warmup_secs: 1,
                smoke: args.smoke,
                common: common(&args, Peer::Confab),
            },
            placement,
        )
        .await?;
        report.print_table();
        lines.push(format!(
            "{:<40} no server, {} sockets at {:.0} msgs/s: sweep {} ms, p99 {} ms",
            "floor (one core only writing)",
            number(&report, "sockets")?,
            rate,
            number(&report, "sweep p50 ms")?,
            number(&report, "p99 ms")?
        ));
        reports.push(report);
    }
    let mut per_socket = [0.0; 2];
    let mut sockets = 0.0;
    for (i, peer) in [Peer::NodeWs, Peer::Confab].into_iter().enumerate() {
        let report = idle::run(
            IdleArgs {
                sockets: args.idle_sockets,
                room_size: 100,
                smoke: args.smoke,
                common: common(&args, peer),
            },
            placement,
        )
        .await?;
        report.print_table();
        per_socket[i] = number(&report, "KiB/socket")?;
        sockets = number(&report, "sockets")?;
        reports.push(report);
    }
    lines.push(format!(
        "{:<40} node-ws {:>10.1}  confab {:>10.1}  KiB of server RSS per idle socket",
        format!("{sockets} idle sockets"),
        per_socket[0],
        per_socket[1]
    ));
    let report = storm::run(
        StormArgs {
            levels: vec![1, 4, 16, 64, 256],
            secs_per_level: 3,
            smoke: args.smoke,
            common: common(&args, Peer::Confab),
        },
        placement,
    )
    .await?;
    report.print_table();
    lines.push(format!(
        "{:<40} confab {:>10.0} sessions/s",
        "connect storm",
        number(&report, "sessions/s")?
    ));
    reports.push(report);
    let report = resumestorm::run(
        ResumeStormArgs {
            resumers: 2_000,
            chatters: 10,
            backlog: 100,
            interval_ms: 20,
            quiet_secs: 2,
            protocol: confab_shared::PROTOCOL_VERSION,
            smoke: args.smoke,
            common: common(&args, Peer::Confab),
        },
        placement,
    )
    .await?;
    report.print_table();
    lines.push(format!(
        "{:<40} confab chat p50 {} ms, p99 {} ms",
        "2,000 resumes while 10 chat",
        number(&report, "p50 ms")?,
        number(&report, "p99 ms")?
    ));
    reports.push(report);
    let report = durable::run(
        DurableArgs {
            senders: 50,
            window: 8,
            duration_secs: args.duration_secs,
            warmup_secs: 2,
            smoke: args.smoke,
            common: common(&args, Peer::Confab),
        },
        placement,
    )
    .await?;
    report.print_table();
    lines.push(format!(
        "{:<40} confab {:>10.0} acked msgs/s, p99 {} ms",
        "durable sends (50 × window 8)",
        number(&report, "msgs/s")?,
        number(&report, "p99 ms")?
    ));
    reports.push(report);

    let report = roomstorm::run(
        RoomStormArgs {
            sockets: 5_000,
            concurrency: 256,
            chat_interval_ms: 50,
            protocol: confab_shared::PROTOCOL_VERSION,
            smoke: args.smoke,
            common: common(&args, Peer::Confab),
        },
        placement,
    )
    .await?;
    report.print_table();
    lines.push(format!(
        "{:<40} confab chatter p99 {} ms, {} server CPU-s, idle {} s after",
        "room storm (5,000 guests create rooms)",
        number(&report, "p99 ms")?,
        number(&report, "server CPU-s")?,
        number(&report, "idle after s")?
    ));
    reports.push(report);

    // The cluster needs PostgreSQL and Redis binaries, which scripts/bench.sh and
    // scripts/test.sh install; run by hand without them, the rest of the suite still runs.
    match cluster::missing_binaries() {
        Some(why) => {
            println!("\ncluster: SKIPPED: {why}");
            lines.push(format!("{:<40} SKIPPED: {why}", "cluster"));
        }
        None => {
            let cluster_args = ClusterArgs {
                nodes: vec![1, 2, 3],
                members: 30,
                publishers: 30,
                window: 4,
                bystanders: 0,
                rate: 200.0,
                duration_secs: args.duration_secs,
                warmup_secs: 2,
                database_url: None,
                redis_url: None,
                smoke: args.smoke,
                common: common(&args, Peer::Confab),
            };
            let rate = cluster_args.rate;
            let runs = cluster::run(cluster_args, placement).await?;
            // Two runs per count of nodes: at the maximum, then at the fixed rate.
            for pair in runs.chunks(2) {
                let [max, fixed] = pair else {
                    anyhow::bail!("the cluster scenario reported an odd number of runs");
                };
                lines.push(format!(
                    "{:<40} confab {:>10.0} delivered/s; at {rate:.0} msgs/s p99 same node \
                     {} ms, other node {} ms, {} node µs/msg",
                    format!("cluster, 30 members on {} node(s)", number(max, "nodes")?),
                    number(max, "delivered/s")?,
                    fixed_figure(fixed, "same p99 ms"),
                    fixed_figure(fixed, "cross p99 ms"),
                    number(fixed, "nodes µs/msg")?,
                ));
            }
            reports.extend(runs);
        }
    }

    println!(
        "\nSummary{}:",
        if args.smoke {
            " (smoke: figures mean nothing)"
        } else {
            ""
        }
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(reports)
}

fn common(args: &SuiteArgs, peer: Peer) -> CommonArgs {
    CommonArgs {
        peer,
        json: None,
        ..args.common.clone()
    }
}

fn fanout_args(args: &SuiteArgs, peer: Peer, shape: &Shape, rate: Option<f64>) -> FanoutArgs {
    FanoutArgs {
        rooms: 1,
        members: shape.members,
        publishers: shape.publishers,
        rate,
        window: 4,
        duration_secs: args.duration_secs,
        warmup_secs: 2,
        changes_every: None,
        smoke: args.smoke,
        common: common(args, peer),
    }
}

/// A figure that may be missing (`-`): cross-node latency with one node.
fn fixed_figure(report: &Report, heading: &str) -> String {
    number(report, heading).map_or_else(|_| "-".to_owned(), |v| v.to_string())
}

fn number(report: &Report, heading: &str) -> anyhow::Result<f64> {
    report
        .columns
        .iter()
        .find(|(h, _)| *h == heading)
        .and_then(|(_, v)| v.as_f64())
        .with_context(|| format!("no figure '{heading}' in the {:?} report", report.meta))
}
