//! `waypoint`: the command-line entry point. Parses configuration, sets up logging and hands
//! over to the library crates.

mod anomaly_cmd;
mod bench_cmd;
mod cli;
mod detection_cmd;
mod eval;
mod export_cmd;
mod lidar_preset;
mod record_cmd;
mod road_cmd;
mod trajectory_cmd;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.log_format, &cli.log);
    match cli.command {
        cli::Command::Serve(args) => cli::serve(*args),
        cli::Command::Replay(args) => cli::replay(args),
        cli::Command::Bench(args) => bench_cmd::bench(args),
        cli::Command::BenchFanout(args) => bench_cmd::fanout(args),
        cli::Command::Eval(args) => eval::eval(args),
        cli::Command::Train(cli::TrainCommand::Trajectory(args)) => trajectory_cmd::train(args),
        cli::Command::Train(cli::TrainCommand::Detection(args)) => detection_cmd::train(args),
        cli::Command::Train(cli::TrainCommand::TrajectoryRoad(args)) => road_cmd::train(args),
        cli::Command::ExportKitti(args) => detection_cmd::export_kitti(args),
        cli::Command::Record(args) => record_cmd::record(*args),
        cli::Command::ExportOnnx(args) => export_cmd::export_onnx(args),
    }
}
