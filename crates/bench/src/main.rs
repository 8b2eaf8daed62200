//! `diquis-bench`: a SignalR load generator. See `diquis-bench --help` and docs/benchmarks.md.
//!
//! The process started by the user coordinates; it re-executes itself as `diquis-bench worker`
//! child processes that each hold at most `--max-per-worker` sockets, because one process may
//! open at most 20,000 files on the benchmark machines.

mod cli;
mod conn;
mod connect;
mod coordinator;
mod frames;
mod hist;
mod ipc;
mod payload;
mod plan;
mod procstat;
mod report;
mod sender;
mod worker;
mod ws;

use clap::Parser;

use crate::cli::{Cli, Scenario};
use crate::coordinator::{Kind, RunSpec};

fn main() {
    let cli = Cli::parse();
    let spec = match cli.scenario {
        Scenario::Worker => std::process::exit(worker::main()),
        Scenario::Idle(args) => RunSpec { name: "idle", common: args.common, kind: Kind::Idle { settle: args.settle } },
        Scenario::Connect(args) => RunSpec { name: "connect", common: args.common, kind: Kind::Connect },
        Scenario::Broadcast(args) => {
            let sender_url = args.sender_url.unwrap_or_else(|| args.common.urls[0].clone());
            RunSpec { name: "broadcast", common: args.common, kind: Kind::Send { traffic: args.traffic, sender_url, group_size: None } }
        }
        Scenario::Group(args) => {
            let sender_url = args.sender_url.unwrap_or_else(|| args.common.urls[0].clone());
            RunSpec {
                name: "group",
                common: args.common,
                kind: Kind::Send { traffic: args.traffic, sender_url, group_size: Some(args.group_size) },
            }
        }
        Scenario::CrossNode(args) => RunSpec {
            name: "cross-node",
            common: args.common,
            kind: Kind::Send { traffic: args.traffic, sender_url: args.sender_url, group_size: None },
        },
        Scenario::Echo(args) => RunSpec { name: "echo", common: args.common, kind: Kind::Echo { rate: args.rate, size: args.size } },
    };
    let json_path = spec.common.json.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, coordinator::run(spec));
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("diquis-bench: {error}");
            std::process::exit(2);
        }
    };
    print!("{}", report.table());
    if let Some(path) = json_path {
        let text = serde_json::to_string_pretty(&report).expect("reports serialise");
        if let Err(error) = std::fs::write(&path, text + "\n") {
            eprintln!("diquis-bench: cannot write {}: {error}", path.display());
            std::process::exit(2);
        }
    }
    std::process::exit(if report.passed { 0 } else { 1 });
}
