//! Checks of the repository's root README, kept in this unpublished crate
//! so that every published crate packages without files outside it.

#[test]
fn the_plan_file_in_the_readme_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("### Plan file")
        .nth(1)
        .expect("README has a plan file section");
    let block = section
        .split("```toml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let plan = rollgate::plan::Plan::parse(block, "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.targets.len(), 10);
    assert_eq!(plan.request("doc", None).plan.phases.len(), 3);
    assert!(plan.gate(None).unwrap().is_some());
}
