//! Test helpers: a tiny hand-made dataset and a scripted HTTP server on 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hhnas_features::{ClassInfo, ClassKind, Dataset, Row, TableInfo};

fn table(name: &str, cols: &[&str]) -> TableInfo {
    TableInfo {
        name: name.into(),
        columns: cols.iter().map(|c| c.to_string()).collect(),
    }
}

/// Three classes: 0 concert_singer, 1 pets_1, 2 notes (no schema tables).
/// Rows 0..9 train, 9..12 valid. Valid rows carry words (zebra, quokka) absent from
/// training, to show that nothing learns from them.
pub fn tiny_dataset() -> Dataset {
    let classes = vec![
        ClassInfo {
            name: "concert_singer".into(),
            members: vec!["concert_singer".into()],
            schema_text: "db: concert_singer | table stadium: stadium id, location, name, capacity | table singer: singer id, name, country, age | table concert: concert id, concert name, theme, year".into(),
            kind: ClassKind::Database {
                tables: vec![
                    table("stadium", &["stadium id", "location", "name", "capacity"]),
                    table("singer", &["singer id", "name", "country", "age"]),
                    table("concert", &["concert id", "concert name", "theme", "year"]),
                ],
            },
        },
        ClassInfo {
            name: "pets_1".into(),
            members: vec!["pets_1".into()],
            schema_text: "db: pets_1 | table Student: StuID, LName, Fname, Age | table Has_Pet: StuID, PetID | table Pets: PetID, PetType, pet_age, weight".into(),
            kind: ClassKind::Database {
                tables: vec![
                    table("Student", &["StuID", "LName", "Fname", "Age"]),
                    table("Has_Pet", &["StuID", "PetID"]),
                    table("Pets", &["PetID", "PetType", "pet_age", "weight"]),
                ],
            },
        },
        ClassInfo {
            name: "notes".into(),
            members: vec!["notes".into()],
            schema_text: "db: notes".into(),
            kind: ClassKind::Database { tables: vec![] },
        },
    ];
    let rows = [
        ("How many singers do we have?", 0),
        ("What is the capacity of the largest stadium?", 0),
        ("Show the names of concerts held in 2014.", 0),
        ("How many pets are owned by students older than 20?", 1),
        ("What is the average weight of dog pets?", 1),
        ("Find the last names of students who have a cat.", 1),
        ("Which memo mentions the budget meeting?", 2),
        ("List every memo written about the budget.", 2),
        ("Count the memos about holidays.", 2),
        // validation
        ("Which singer sang with the zebra?", 0),
        ("How heavy is the quokka pet?", 1),
        ("Show the zebra memo.", 2),
    ];
    Dataset {
        rows: rows
            .iter()
            .map(|(q, l)| Row {
                question: q.to_string(),
                db_id: classes[*l as usize].name.clone(),
                label: *l,
            })
            .collect(),
        classes,
        train: (0..9).collect(),
        valid: (9..12).collect(),
        test: vec![],
        merge: "none".into(),
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }

    /// The user message of a chat request.
    pub fn prompt(&self) -> String {
        self.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// What the server does with one request.
pub enum Reply {
    /// Status, content type, body.
    Raw(u16, &'static str, String),
    /// Wait this long, then close without answering.
    Hang(Duration),
}

/// A chat-completions answer with `content`.
pub fn chat(content: &str) -> Reply {
    Reply::Raw(
        200,
        "application/json",
        serde_json::json!({
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
        })
        .to_string(),
    )
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection:
/// close`). Stops when dropped; each connection is bounded in time.
pub struct MockServer {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    pub in_flight_max: Arc<AtomicUsize>,
}

impl MockServer {
    /// `handler(request, n)` answers the n-th request (0-based).
    pub fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        // Requests in flight are counted around the handler, not per connection: a
        // connection thread still closing after its answer is not a request in flight,
        // and counting it made the peak exceed the client's bound on a loaded machine.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight_max = Arc::new(AtomicUsize::new(0));
        let (inf, infm) = (in_flight, in_flight_max.clone());
        let handler: Arc<Handler> = Arc::new(move |r: &Seen, n: usize| {
            let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
            infm.fetch_max(now, Ordering::SeqCst);
            let reply = handler(r, n);
            inf.fetch_sub(1, Ordering::SeqCst);
            reply
        });
        let (s2, st2) = (seen.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut conns = Vec::new();
            while !st2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (seen, handler, stop) = (s2.clone(), handler.clone(), st2.clone());
                        conns.push(std::thread::spawn(move || {
                            let _ = serve(stream, &seen, &*handler, &stop);
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        MockServer {
            url,
            seen,
            stop,
            accept: Some(accept),
            in_flight_max,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let req = Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(req.clone());
        s.len() - 1
    };
    let mut stream = stream;
    match handler(&req, n) {
        Reply::Raw(status, ctype, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body.as_bytes())?;
            stream.flush()?;
        }
        Reply::Hang(d) => {
            let end = Instant::now() + d;
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Ok(())
}
