//! Only the window needs Tauri's build step (it reads tauri.conf.json and the
//! capabilities); the library and `sam` build without WebKitGTK or a built UI.

fn main() {
    #[cfg(feature = "app")]
    tauri_build::build();
}
