//! Compile a canary strategy to a plan through the umbrella's prelude.
//!
//! ```text
//! cargo run -p rollgate --example plan
//! ```

use rollgate::prelude::*;

fn main() -> Result<(), DeployError> {
    let targets: Vec<TargetId> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    let plan = Strategy::Canary {
        steps: vec![Percent::new(25.0)?, Percent::FULL],
    }
    .compile(&targets, &PhaseDefaults::default())?;
    for (i, phase) in plan.phases.iter().enumerate() {
        println!("phase {}: {:?}", i + 1, phase);
    }
    assert_eq!(plan.phases.len(), 2);
    Ok(())
}
