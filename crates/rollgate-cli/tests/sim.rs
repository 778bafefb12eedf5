//! `rollgate sim`: the fleet simulator from the command line.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("sim")
        .args(args)
        .output()
        .expect("rollgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_runs_with_one_seed_print_identical_output_beside_the_seeds_figures() {
    let (code, first, err) = sim(&["--seed", "7"]);
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = sim(&["--seed", "7"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, second);
    for row in [
        "| error spike: peak fleet error rate over 10 s |",
        "| time to detect: first bad target → rollback verdict |",
        "| rollback duration: verdict → every target on v1 |",
        "| time to roll back: first bad target → every target on v1 |",
        "| user tickets | not simulated | not simulated | 17 | 0 |",
        "6.3 %",
        "1.2 %",
        "240 s",
        "35 min",
        "(modelled: the operator)",
        "MODELLED",
    ] {
        assert!(first.contains(row), "missing {row:?} in\n{first}");
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (&["--fleet", "0"][..], "--fleet"),
        (&["--fleet=-3"][..], "--fleet"),
        (&["--bake", "10 parsecs"][..], "--bake"),
        (&["--bake", "1500ms"][..], "--bake"),
        (&["--bake", "0s"][..], "--bake"),
        (&["--step", "0"][..], "--step"),
        (&["--step", "ten"][..], "--step"),
        (&["--error-rate", "101%"][..], "--error-rate"),
        (&["--alpha", "0.7"][..], "--alpha"),
        (&["--deploy-parallel", "0"][..], "--deploy-parallel"),
        (&["--human-notice", "2days"][..], "--human-notice"),
        (&["--seed", "x"][..], "--seed"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let (code, out, err) = sim(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
