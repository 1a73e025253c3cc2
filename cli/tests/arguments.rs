//! The command line's arguments, without a model: the options `segment` and `cohort`
//! share are declared once and read the same in both. (Being an integration test of this
//! package, it also makes `cargo test` at the workspace root build the `brainsam`
//! binary that the root package's CLI tests run.)

use std::process::Command;

fn help(subcommand: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_brainsam"))
        .args([subcommand, "--help"])
        .output()
        .expect("run brainsam");
    assert!(
        output.status.success(),
        "brainsam {subcommand} --help failed"
    );
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The help text of one long option (its line and the description lines below it), as
/// words.
fn option_block(help: &str, flag: &str) -> Option<String> {
    let mut lines = help
        .lines()
        .skip_while(|line| !line.trim_start().split([' ', ',']).any(|word| word == flag));
    let first = lines.next()?;
    let rest: Vec<&str> = lines
        .take_while(|line| {
            // Up to the next option or section; long help puts blank lines inside a block.
            line.trim().is_empty() || line.starts_with("          ")
        })
        .collect();
    // clap lays a block out on one line or two depending on the other options: compare
    // the words.
    let words: Vec<&str> = std::iter::once(first)
        .chain(rest)
        .flat_map(str::split_whitespace)
        .collect();
    Some(words.join(" "))
}

#[test]
fn segment_and_cohort_share_the_view_cleanup_and_batch_options() {
    let segment = help("segment");
    let cohort = help("cohort");
    let bids = help("bids");
    for flag in [
        "--model",
        "--adapter",
        "--device",
        "--precision",
        "--batch-size",
        "--no-cleanup",
        "--no-mirror",
        "--no-shift",
    ] {
        let in_segment = option_block(&segment, flag)
            .unwrap_or_else(|| panic!("segment --help lacks {flag}:\n{segment}"));
        for (name, text) in [("cohort", &cohort), ("bids", &bids)] {
            let block = option_block(text, flag)
                .unwrap_or_else(|| panic!("{name} --help lacks {flag}:\n{text}"));
            assert_eq!(in_segment, block, "{flag} reads differently in {name}");
        }
    }
}
