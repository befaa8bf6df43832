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

/// The marked part of an example (`// [readme]` to `// [/readme]`), unindented.
fn marked(example: &str) -> String {
    let from = example
        .find("// [readme]\n")
        .expect("the example marks its README part")
        + 12;
    let to = example
        .find("    // [/readme]")
        .expect("the marked part ends");
    let lines: Vec<&str> = example[from..to]
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect();
    lines.join("\n")
}

/// The first rust block after `heading`.
fn block_after<'a>(readme: &'a str, heading: &str) -> &'a str {
    let section = readme.find(heading).expect("the README's section");
    let fence = "```rust\n";
    let start = section
        + readme[section..]
            .find(fence)
            .expect("a rust block in the section")
        + fence.len();
    let end = start + readme[start..].find("```").expect("the block ends");
    &readme[start..end]
}

#[test]
fn readme_shared_store_snippet_is_the_several_instances_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/several_instances.rs");
    assert_eq!(
        block_after(readme, "## Running several instances").trim(),
        marked(example).trim(),
        "README's shared-store snippet and examples/several_instances.rs differ"
    );
}

#[test]
fn readme_redis_snippet_is_the_redis_instances_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/redis_instances.rs");
    assert_eq!(
        block_after(readme, "Or with the `redis` feature").trim(),
        marked(example).trim(),
        "README's Redis snippet and examples/redis_instances.rs differ"
    );
}

#[test]
fn readme_web_service_snippet_is_the_axum_service_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/axum_service.rs");
    assert_eq!(
        block_after(readme, "## In an axum or warp service").trim(),
        marked(example).trim(),
        "README's web service snippet and examples/axum_service.rs differ"
    );
}

#[test]
fn readme_layers_snippet_is_the_api_behind_layers_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/api_behind_layers.rs");
    assert_eq!(
        block_after(readme, "### The API behind your own layers").trim(),
        marked(example).trim(),
        "README's layers snippet and examples/api_behind_layers.rs differ"
    );
}

#[test]
fn readme_middleware_snippet_is_the_job_layers_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/job_layers.rs");
    assert_eq!(
        block_after(readme, "## Middleware for every job").trim(),
        marked(example).trim(),
        "README's middleware snippet and examples/job_layers.rs differ"
    );
}
