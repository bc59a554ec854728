use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = klachtd::cli::Cli::parse();
    match klachtd::cli::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("klachtd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
