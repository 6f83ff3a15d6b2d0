//! Terminals, exec and port forwards end to end: the real `sam` binary (and the
//! library for what the app will call) against a real local agent and Docker.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Waits for `child` at most `secs` seconds (then kills it and fails).
fn wait_for(child: &mut Child, secs: u64) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sam did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `sam ARGS…` with `input` on its stdin; answers (status, stdout, stderr).
fn run_with_stdin(d: &Desktop, args: &[&str], input: &[u8], secs: u64) -> (i32, String, String) {
    let mut child = d
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sam");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        // stdin closes here.
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let status = wait_for(&mut child, secs);
    let _ = writer.join();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    )
}

fn terminals(d: &Desktop, ws: &str) -> Vec<serde_json::Value> {
    d.json(&["term", ws, "--list"])
        .as_array()
        .expect("a JSON array")
        .clone()
}

#[test]
fn term_with_piped_stdin_runs_until_exit_and_terminals_list_and_kill() {
    let d = Desktop::new();
    d.add_local();
    d.json(&["ws", "create", "here", "tt"]);

    // stdin not a terminal: sent as typed; the output printed; the terminal's status.
    let (code, out, err) = run_with_stdin(&d, &["term", "tt"], b"printf 'a%sb\\n' X; exit 3\n", 60);
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("aXb"),
        "the command's output is printed: {out}"
    );

    let list = terminals(&d, "tt");
    assert_eq!(list.len(), 1, "{list:?}");
    let first = &list[0];
    let tid = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["exited"], true);
    assert_eq!(first["exitCode"], 3);
    assert!(first["cols"].as_u64().unwrap() >= 1 && first["createdAt"].is_string());
    let table = d.ok(&["term", "tt", "--list"]);
    assert!(
        table.starts_with("ID") && table.contains(&tid) && table.contains("exited (3)"),
        "{table}"
    );

    // An exited terminal replays its scrollback and its status.
    let (code, out, _) = run_with_stdin(&d, &["term", "tt", "--attach", &tid], b"", 30);
    assert_eq!(code, 3);
    assert!(out.contains("aXb"), "{out}");

    // A terminal outlives the `sam term` that started it.
    let mut child = d
        .cmd(&[
            "term",
            "tt",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 600",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("started"), "{line:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let list = terminals(&d, "tt");
    let running: Vec<_> = list.iter().filter(|t| t["exited"] == false).collect();
    assert_eq!(running.len(), 1, "{list:?}");
    let sleeper = running[0]["id"].as_str().unwrap().to_string();

    // Killing asks first: no terminal and no --yes refuses.
    let (code, _, err) = d.run(&["term", "tt", "--kill", &sleeper]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("Killing terminal {sleeper}")) && err.contains("hint: Pass --yes"),
        "{err}"
    );
    let killed = d.json(&["--yes", "term", "tt", "--kill", &sleeper]);
    assert_eq!(killed["id"], sleeper.as_str());
    assert_eq!(killed["deleted"], true);
    let list = terminals(&d, "tt");
    assert!(list.iter().all(|t| t["id"] != sleeper.as_str()), "{list:?}");
    let (code, _, err) = d.run(&["--yes", "term", "tt", "--kill", &sleeper]);
    assert_eq!(code, 1);
    assert!(err.contains("error:") && err.contains("--list"), "{err}");

    // Attaching to a terminal that is not there says how to find one.
    let (code, _, err) = d.run(&["term", "tt", "--attach", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("error:") && err.contains("--list"), "{err}");
}

#[test]
fn exec_passes_streams_status_stdin_env_and_cwd_through() {
    let d = Desktop::new();
    d.add_local();
    d.json(&["ws", "create", "here", "ex"]);

    let (code, out, err) = d.run(&[
        "exec",
        "ex",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));

    // stdin passes through, and large input is not a problem (frames stay < 1 MiB).
    let (code, out, _) = run_with_stdin(&d, &["exec", "ex", "--", "cat"], b"hello\nworld", 60);
    assert_eq!((code, out.as_str()), (0, "hello\nworld"));
    let big = vec![b'x'; 3 << 20];
    let (code, out, err) = run_with_stdin(&d, &["exec", "ex", "--", "wc", "-c"], &big, 120);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), (3 << 20).to_string());

    // The shell's codes for a command that is not there.
    let (code, _, err) = d.run(&["exec", "ex", "--", "no-such-command"]);
    assert_eq!(code, 127, "{err}");

    // Environment (K=V, or K from sam's own environment) and working directory.
    let out = d
        .cmd(&[
            "exec",
            "ex",
            "--env",
            "A=1",
            "--env",
            "B",
            "--cwd",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo $A$B; pwd",
        ])
        .env("B", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "12\n/tmp\n");
    let (code, out, _) = d.run(&["exec", "ex", "pwd"]);
    assert_eq!((code, out.as_str()), (0, "/workspaces/ex\n"));

    // When sam itself fails: 125 and an error line.
    let (code, out, err) = d.run(&["exec", "nowhere", "--", "true"]);
    assert_eq!(code, 125);
    assert!(out.is_empty());
    assert!(err.starts_with("error: ") && err.contains("hint:"), "{err}");
    let (code, _, err) = d.run(&["exec", "ex", "--env", "1X=y", "--", "true"]);
    assert_eq!(code, 125, "{err}");
    let (code, _, _) = d.run(&["exec", "ex"]);
    assert_eq!(code, 2, "no command is a usage error");
}

/// `GET path` over plain HTTP/1.0 to 127.0.0.1:port; the whole answer.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Retries `http_get` until the answer contains `want` (the server may be starting).
fn fetch(port: u16, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = http_get(port, "/").unwrap_or_default();
        if answer.contains(want) || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts `sam forward ARGS…`; answers the child and the local port it printed.
fn start_forward(d: &Desktop, args: &[&str]) -> (Child, u16, String) {
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    let mut child = d
        .cmd(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("Forwarding 127.0.0.1:")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("sam forward printed {line:?}; stderr: {err}")
        });
    (child, port, line)
}

fn interrupt(child: &mut Child) -> (ExitStatus, String) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_for(child, 10);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (status, err)
}

#[test]
fn forward_reaches_each_workspaces_own_port_until_ctrl_c() {
    let d = Desktop::new();
    d.add_local();
    for name in ["one", "two"] {
        d.json(&["ws", "create", "here", name]);
        // busybox httpd puts itself in the background; the exec returns.
        let script = format!(
            "mkdir -p /tmp/www && echo 'hello from {name}' > /tmp/www/index.html && busybox httpd -p 127.0.0.1:3000 -h /tmp/www"
        );
        let (code, _, err) = d.run(&["exec", name, "--", "sh", "-c", &script]);
        assert_eq!(code, 0, "{err}");
    }

    let (mut one, one_port, line) = start_forward(&d, &["one", "3000", "0"]);
    assert_eq!(
        line,
        format!("Forwarding 127.0.0.1:{one_port} -> one:3000\n")
    );
    let fixed = free_port();
    let (mut two, two_port, _) = start_forward(&d, &["two", "3000", &fixed.to_string()]);
    assert_eq!(two_port, fixed, "an explicit LOCAL_PORT is used");

    let answer = fetch(one_port, "hello from one");
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains("hello from one"),
        "{answer}"
    );
    let answer = fetch(two_port, "hello from two");
    assert!(answer.contains("hello from two"), "{answer}");
    // Several connections, one after another, on one forward.
    for _ in 0..3 {
        assert!(http_get(one_port, "/").unwrap().contains("hello from one"));
    }

    // The taken port is refused with a hint.
    let (code, _, err) = d.run(&["forward", "one", "3000", &two_port.to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("already in use") && err.contains("hint:"),
        "{err}"
    );

    // Ctrl-C ends a forward with 0, and the port is free again.
    let (status, _) = interrupt(&mut one);
    assert_eq!(status.code(), Some(0));
    assert!(TcpStream::connect(("127.0.0.1", one_port)).is_err());
    let (status, _) = interrupt(&mut two);
    assert_eq!(status.code(), Some(0));

    // Nothing listening in the workspace: the connection is closed, with a warning.
    let (mut none, none_port, _) = start_forward(&d, &["one", "4000"]);
    let mut s = TcpStream::connect(("127.0.0.1", none_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let (status, err) = interrupt(&mut none);
    assert_eq!(status.code(), Some(0));
    assert!(err.contains("warning:") && err.contains("4000"), "{err}");
}

/// Polls `buf` until it contains `want` (or fails after `secs`).
fn wait_output(buf: &Arc<Mutex<Vec<u8>>>, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        if text.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{want:?} did not appear; the screen so far: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn interactive_term_in_a_pty_types_resizes_and_detaches() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};

    let d = Desktop::new();
    d.add_local();
    d.json(&["ws", "create", "here", "tty"]);

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let template = d.cmd(&["term", "tty"]);
    let mut cmd = CommandBuilder::new(SAM);
    cmd.args(["term", "tty"]);
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pty.master.try_clone_reader().unwrap();
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut keys = pty.master.take_writer().unwrap();
    let mut type_keys = |s: &[u8]| {
        keys.write_all(s).unwrap();
        keys.flush().unwrap();
    };

    wait_output(&screen, "Ctrl-] d detaches", 30);
    // What is typed reaches the shell (the echo is the shell's), and the remote
    // terminal has the local window's size.
    type_keys(b"stty size; echo typed-$((6*7))\r");
    wait_output(&screen, "typed-42", 30);
    wait_output(&screen, "30 100", 10);

    // A resized window (SIGWINCH) resizes the remote terminal.
    pty.master
        .resize(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        type_keys(b"stty size\r");
        std::thread::sleep(Duration::from_millis(500));
        if String::from_utf8_lossy(&screen.lock().unwrap()).contains("40 120") {
            break;
        }
        assert!(Instant::now() < deadline, "the resize did not arrive");
    }

    // Ctrl-] then d (in separate reads) detaches; the terminal lives on.
    type_keys(b"\x1d");
    std::thread::sleep(Duration::from_millis(200));
    type_keys(b"d");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sam term did not detach");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.exit_code(), 0);
    wait_output(&screen, "Detached from terminal", 5);
    wait_output(&screen, "sam term tty --attach", 5);

    // The local terminal is back in its normal mode.
    #[cfg(unix)]
    {
        use rustix::termios::LocalModes;
        let fd = pty.master.as_raw_fd().expect("a pty fd");
        // SAFETY: the master stays open (owned by `pty.master`) for this borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let modes = rustix::termios::tcgetattr(fd).unwrap();
        assert!(
            modes
                .local_modes
                .contains(LocalModes::ICANON | LocalModes::ECHO),
            "raw mode was not undone: {:?}",
            modes.local_modes
        );
    }

    let list = terminals(&d, "tty");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["exited"], false, "detached, not ended");
    assert_eq!(list[0]["cols"], 120);
    let tid = list[0]["id"].as_str().unwrap().to_string();

    // Re-attached (without a tty): the scrollback, then it runs until it exits.
    let (code, out, _) = run_with_stdin(&d, &["term", "tty", "--attach", &tid], b"exit 5\n", 30);
    assert_eq!(code, 5);
    assert!(
        out.contains("typed-42"),
        "the scrollback is replayed: {out}"
    );
}

/// The library itself, as the app will call it.
mod library {
    use std::io::{Read, Write};
    use std::time::Duration;

    use futures::StreamExt;
    use sam_desktop::Sam;
    use sam_desktop::api::exec::{ExecOutput, ExecRequest};
    use sam_desktop::api::forward::ForwardEvent;
    use sam_desktop::api::terminals::{NewTerminal, TerminalOutput};

    use super::common::*;

    /// Opens the library on the installation the CLI made (same state folder and
    /// the same secrets file).
    async fn open(d: &Desktop) -> Sam {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: the same constant value for every test of this binary, and
            // the variable is read by this process's own `Sam::open_at` only.
            unsafe { std::env::set_var("SAM_SECRET_STORE", "file") };
        });
        Sam::open_at(&d.state()).await.expect("open the library")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_terminal_and_forward_through_the_library() {
        let d = Desktop::new();
        d.add_local();
        d.json(&["ws", "create", "here", "lib"]);
        let sam = open(&d).await;

        // exec: stdin echoed back while more is still being sent (no deadlock),
        // stdout and stderr apart, then the status.
        let conn = sam
            .exec(
                "lib",
                ExecRequest {
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        "cat; echo done >&2; exit 4".into(),
                    ],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let (input, mut output) = conn.into_parts();
        let sent = 4 << 20;
        let feeder = tokio::spawn(async move {
            input.send(&vec![b'y'; sent]).await.unwrap();
            input.eof().await.unwrap();
        });
        let (mut stdout, mut stderr, mut exit) = (0usize, Vec::new(), None);
        while let Some(item) = output.next().await {
            match item {
                ExecOutput::Stdout(b) => stdout += b.len(),
                ExecOutput::Stderr(b) => stderr.extend_from_slice(&b),
                ExecOutput::Exit(code) => exit = Some(code),
                ExecOutput::Error(m) => panic!("exec failed: {m}"),
            }
        }
        feeder.await.unwrap();
        assert_eq!(
            (stdout, stderr.as_slice(), exit),
            (sent, &b"done\n"[..], Some(4))
        );

        // A terminal: raw bytes, `ready`, input, resize, `exit`, the end.
        let t = sam
            .create_terminal(
                "lib",
                NewTerminal {
                    cols: 80,
                    rows: 24,
                    command: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        // (Not `stty size` first: Docker sizes an exec's tty just
                        // after starting it.)
                        "read x; stty size; echo got-$x; exit 6".into(),
                    ]),
                },
            )
            .await
            .unwrap();
        let mut conn = sam.attach_terminal("lib", &t.id).await.unwrap();
        let mut screen = Vec::new();
        let mut ready = false;
        let mut exit = None;
        let mut typed = false;
        while let Some(item) = tokio::time::timeout(Duration::from_secs(30), conn.output.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no terminal output; so far: {:?}",
                    String::from_utf8_lossy(&screen)
                )
            })
        {
            match item {
                TerminalOutput::Bytes(b) => screen.extend_from_slice(&b),
                TerminalOutput::Ready => ready = true,
                TerminalOutput::Exit(code) => exit = Some(code),
                TerminalOutput::Error(m) => panic!("terminal error: {m}"),
            }
            if ready && !typed {
                typed = true;
                conn.resize(100, 30).await.unwrap();
                conn.send(b"hi\r").await.unwrap();
            }
        }
        let text = String::from_utf8_lossy(&screen);
        assert!(ready && exit == Some(6), "{ready} {exit:?} {text}");
        assert!(text.contains("30 100") && text.contains("got-hi"), "{text}");
        assert!(conn.resize(0, 5).await.is_err(), "sizes are checked");

        // Re-attached, an exited terminal replays, says `ready`, `exit`, and ends.
        let conn = sam.attach_terminal("lib", &t.id).await.unwrap();
        let items: Vec<TerminalOutput> = conn.output.collect().await;
        let replay: Vec<u8> = items
            .iter()
            .filter_map(|i| match i {
                TerminalOutput::Bytes(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(String::from_utf8_lossy(&replay).contains("got-hi"));
        assert_eq!(
            &items[items.len() - 2..],
            &[TerminalOutput::Ready, TerminalOutput::Exit(6)]
        );
        sam.kill_terminal("lib", &t.id).await.unwrap();
        assert!(sam.list_terminals("lib").await.unwrap().is_empty());

        // A forward to an echo server: bulk both ways, and the answer still comes
        // after the local client has ended its sending side.
        let (code, _, err) = d.run(&[
            "exec",
            "lib",
            "--",
            "sh",
            "-c",
            "nc -ll -p 4000 -e cat >/dev/null 2>&1 &",
        ]);
        assert_eq!(code, 0, "{err}");
        let mut f = sam.forward("lib", 4000, 0).await.unwrap();
        let addr = f.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let echoed = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let attempt = (|| -> std::io::Result<Vec<u8>> {
                    let mut s = std::net::TcpStream::connect(addr)?;
                    s.set_read_timeout(Some(Duration::from_secs(10)))?;
                    let data = vec![b'z'; 1 << 20];
                    let mut reader = s.try_clone()?;
                    let writer = std::thread::spawn(move || {
                        let _ = s.write_all(&data);
                        let _ = s.shutdown(std::net::Shutdown::Write);
                    });
                    let mut got = vec![0u8; 1 << 20];
                    reader.read_exact(&mut got)?;
                    let _ = writer.join();
                    Ok(got)
                })();
                match attempt {
                    Ok(got) => return got,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(200))
                    }
                    Err(e) => panic!("no echo through the forward: {e}"),
                }
            }
        })
        .await
        .unwrap();
        assert!(echoed.len() == 1 << 20 && echoed.iter().all(|&b| b == b'z'));

        // Nothing listens on 4001: the connection is refused with a notice.
        let mut g = sam.forward("lib", 4001, 0).await.unwrap();
        let gaddr = g.local_addr();
        let _conn = tokio::net::TcpStream::connect(gaddr).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(ForwardEvent::Failed { error, .. }) = g.next_event().await {
                    return error;
                }
            }
        })
        .await
        .expect("a notice");
        assert_eq!(event.code, "port_unreachable", "{event:?}");

        // Dropped, a forward stops listening.
        drop(g);
        f.stop();
        assert!(f.next_event().await.is_none());
        drop(f);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        assert!(tokio::net::TcpStream::connect(gaddr).await.is_err());

        // A forward of a workspace that is not there fails at once.
        assert!(sam.forward("nowhere", 80, 0).await.is_err());
    }
}
