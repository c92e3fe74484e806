fn main() -> std::process::ExitCode {
    litegraph_backup::cli::main()
}
