//! Runs a Node script from `benches/node/` for a bench's anchor figures.

/// Runs `node [flags] benches/node/<script> <args>`; its stdout, or `None`
/// (with a note on stderr) if node is missing or fails.
pub fn run_node(flags: &[&str], script: &str, args: &[String]) -> Option<String> {
    let out = std::process::Command::new("node")
        .args(flags)
        .arg(format!(
            "{}/benches/node/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("node failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
