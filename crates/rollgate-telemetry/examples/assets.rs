//! Writes the generated Grafana dashboard and Prometheus alert rules into a
//! directory: `cargo run -p rollgate-telemetry --example assets -- OUT_DIR`.

fn main() -> Result<(), rollgate_telemetry::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "telemetry-assets".into());
    for path in rollgate_telemetry::AssetOptions::default().write(std::path::Path::new(&dir))? {
        println!("{}", path.display());
    }
    Ok(())
}
