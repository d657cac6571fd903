//! `otlp-loadgen`: sends realistic OTLP traces, metrics and logs over gRPC, HTTP or
//! WebSocket and reports what was acknowledged and how long it took (see `--help`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use otlp_relay::loadgen;

fn main() -> ExitCode {
    let (options, json) = match loadgen::parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{}", loadgen::HELP);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("otlp-loadgen: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("otlp-loadgen: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(loadgen::run(options)) {
        Ok(report) => {
            if json {
                print!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            if report.all_accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("otlp-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}
