//! The README's quick start is `examples/quickstart.rs`, which `cargo test` compiles; this
//! keeps the two the same text.

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/quickstart.rs");
    let fence = "```rust,no_run\n";
    let start = readme.find(fence).expect("a rust block in the README") + fence.len();
    let end = start + readme[start..].find("```").expect("the block ends");
    // The example's `//!` header is for rustdoc, not for the README.
    let example: Vec<&str> = example
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .collect();
    assert_eq!(
        readme[start..end].trim(),
        example.join("\n").trim(),
        "README quick start and examples/quickstart.rs differ"
    );
}

#[test]
fn readme_shared_store_snippet_is_the_several_instances_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/several_instances.rs");
    let section = readme
        .find("## Running several instances")
        .expect("the README's section");
    let fence = "```rust\n";
    let start = section
        + readme[section..]
            .find(fence)
            .expect("a rust block in the section")
        + fence.len();
    let end = start + readme[start..].find("```").expect("the block ends");
    let from = example
        .find("// [readme]\n")
        .expect("the example marks its README part")
        + 12;
    let to = example
        .find("    // [/readme]")
        .expect("the marked part ends");
    let example: Vec<&str> = example[from..to]
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect();
    assert_eq!(
        readme[start..end].trim(),
        example.join("\n").trim(),
        "README's shared-store snippet and examples/several_instances.rs differ"
    );
}
