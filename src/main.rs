use clap::Parser;

fn main() -> std::process::ExitCode {
    bounded_heap();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klachtd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let cli = klachtd::cli::Cli::parse();
        match klachtd::cli::main(cli).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("klachtd: {}", klachtd::store::explain(&e));
                std::process::ExitCode::FAILURE
            }
        }
    })
}

/// glibc serves an allocation from an mmap of its own only above a
/// threshold it raises to the largest block freed so far (up to 32 MiB).
/// After one 12 MB mail, later big buffers come from the heaps of the
/// threads and stay there when freed: peak RSS grows with every large mail
/// (88 MB for twelve of 12 MB; 66 MB with this). A fixed threshold keeps
/// each large buffer in its own mapping, returned to the system on free.
fn bounded_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
