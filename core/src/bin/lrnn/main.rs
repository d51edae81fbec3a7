//! `lrnn`: the headless command-line interface of L-RNN Studio (commands follow in the next commits).

fn main() {
    eprintln!("lrnn: no commands yet");
    std::process::exit(2);
}
