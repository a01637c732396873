//! Lists the wgpu adapters this machine offers: `cargo run -p chords-wgpu --example adapters`.

fn main() {
    let adapters = chords_wgpu::list_adapters(chords_wgpu::wgpu::Backends::all().with_env());
    if adapters.is_empty() {
        println!("no wgpu adapter found");
    }
    for (i, a) in adapters {
        println!("{i}: {a}");
    }
}
