//! Group commit on three stores: many writers hand a record to one writer thread and wait
//! until it is durable; the thread writes everything that queued up as one group and syncs
//! once. Prints records/s and latency percentiles per store.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

trait Store: Send {
    fn write_group(&mut self, records: &[(u64, Vec<u8>)]);
}

struct SegmentLog(File);
impl Store for SegmentLog {
    fn write_group(&mut self, records: &[(u64, Vec<u8>)]) {
        let mut buffer = Vec::new();
        for (_, r) in records {
            buffer.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&0u32.to_le_bytes());
            buffer.extend_from_slice(r);
        }
        self.0.write_all(&buffer).unwrap();
        self.0.sync_data().unwrap();
    }
}

struct Preallocated(File, u64);
impl Store for Preallocated {
    fn write_group(&mut self, records: &[(u64, Vec<u8>)]) {
        use std::os::unix::fs::FileExt;
        let mut buffer = Vec::new();
        for (_, r) in records {
            buffer.extend_from_slice(&(r.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&0u32.to_le_bytes());
            buffer.extend_from_slice(r);
        }
        self.0.write_all_at(&buffer, self.1).unwrap();
        self.1 += buffer.len() as u64;
        self.0.sync_data().unwrap();
    }
}

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("spool");
struct Redb(redb::Database);
impl Store for Redb {
    fn write_group(&mut self, records: &[(u64, Vec<u8>)]) {
        let txn = self.0.begin_write().unwrap(); // Durability::Immediate
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for (k, r) in records {
                table.insert(k, r.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
}

struct Fjall(fjall::Keyspace, fjall::PartitionHandle);
impl Store for Fjall {
    fn write_group(&mut self, records: &[(u64, Vec<u8>)]) {
        let mut batch = self.0.batch();
        for (k, r) in records {
            batch.insert(&self.1, k.to_be_bytes(), r);
        }
        batch.commit().unwrap();
        self.0.persist(fjall::PersistMode::SyncData).unwrap();
    }
}

type Reply = mpsc::Sender<()>;

fn run(name: &str, mut store: Box<dyn Store>, writers: usize, seconds: u64, size: usize) {
    let (tx, rx) = mpsc::channel::<(u64, Vec<u8>, Reply)>();
    std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let records: Vec<(u64, Vec<u8>)> =
                group.iter().map(|(k, r, _)| (*k, r.clone())).collect();
            store.write_group(&records);
            for (_, _, reply) in group {
                let _ = reply.send(());
            }
        }
    });
    bench_writers(name, tx, writers, seconds, size);
}

fn bench_writers(name: &str, tx: mpsc::Sender<(u64, Vec<u8>, Reply)>, writers: usize, seconds: u64, size: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for w in 0..writers {
        let (tx, stop, latencies) = (tx.clone(), Arc::clone(&stop), Arc::clone(&latencies));
        threads.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (reply, done) = mpsc::channel();
                let started = Instant::now();
                tx.send(((w as u64) << 40 | n, vec![b'x'; size], reply)).unwrap();
                done.recv().unwrap();
                mine.push(started.elapsed());
                n += 1;
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "{name:12} {:>8.0} records/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        l.len() as f64 / seconds as f64,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map_or("/tmp/spool-stores", String::as_str)).to_path_buf();
    let writers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let size = 2300; // a 2.2 KB webhook plus headers
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("{writers} writers, {size}-byte records, {seconds} s each, group commit, fsync per group");
    let file = OpenOptions::new().create(true).append(true).open(dir.join("log.seg")).unwrap();
    run("segment-log", Box::new(SegmentLog(file)), writers, seconds, size);
    if std::env::var("ONLY_LOG").is_ok() {
        let file = OpenOptions::new().create(true).append(true).open(dir.join("log2.seg")).unwrap();
        run("segment-log", Box::new(SegmentLog(file)), writers, seconds, size);
        let mut file = OpenOptions::new().create(true).read(true).write(true).open(dir.join("pre.seg")).unwrap();
        file.write_all(&vec![0u8; 1 << 30]).unwrap();
        file.sync_all().unwrap();
        run("preallocated", Box::new(Preallocated(file, 0)), writers, seconds, size);
        let file = OpenOptions::new().create(true).read(true).write(true).open(dir.join("falloc.seg")).unwrap();
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 1 << 30).unwrap();
        file.sync_all().unwrap();
        run("fallocate", Box::new(Preallocated(file, 0)), writers, seconds, size);
        let file = OpenOptions::new().create(true).read(true).write(true).open(dir.join("sparse.seg")).unwrap();
        file.set_len(1 << 30).unwrap();
        file.sync_all().unwrap();
        run("set_len", Box::new(Preallocated(file, 0)), writers, seconds, size);
        return;
    }
    let db = redb::Database::create(dir.join("spool.redb")).unwrap();
    run("redb", Box::new(Redb(db)), writers, seconds, size);
    let keyspace = fjall::Config::new(dir.join("fjall")).open().unwrap();
    let partition = keyspace
        .open_partition("spool", fjall::PartitionCreateOptions::default())
        .unwrap();
    run("fjall", Box::new(Fjall(keyspace, partition)), writers, seconds, size);
}
