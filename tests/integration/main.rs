//! Integration tests: the real binaries and the distribution files (action, workflows, Dockerfile, fixtures).

mod distribution;
mod github_actions;
