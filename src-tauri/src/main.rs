//! The SAM desktop window (`--features app`).

fn main() {
    sam_desktop::app::run();
}
