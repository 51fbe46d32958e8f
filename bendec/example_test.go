package bendec_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/bendec"
)

// typesJSON is the schema file a Node producer and a Go consumer share (types.json); Node passes
// it as new Bendec({ types: require('./types.json') }).
const typesJSON = `[
  { "name": "u8", "size": 1 },
  { "name": "u64", "size": 8 },
  { "name": "char", "size": 1 },
  { "name": "Level", "underlying": "u8", "variants": [["Debug", 0], ["Info", 1], ["Warn", 2], ["Error", 3]] },
  { "name": "LogEvent", "fields": [
    { "name": "timestamp", "type": "u64" },
    { "name": "level", "type": "Level" },
    { "name": "message", "type": "char", "length": 23 }
  ] }
]`

// A Go consumer reads events a Node producer wrote with
//
//	const frame = writer.allocate(bendec.getSize('LogEvent'))
//	bendec.encodeAs({ timestamp: 1764547200000000000n, level: 1, message: Buffer.from('Application started') }, 'LogEvent', frame)
//	writer.commit()
//
// Examples cannot run node, so here Go writes the log with the same schema: the bytes are the
// same (the package's tests check them against Node bendec 0.51.0).
func Example_nodeProducer() {
	dir, err := os.MkdirTemp("", "bendec-example-") // real programs use /dev/shm
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "myapp-events")

	schema, err := bendec.Load([]byte(typesJSON))
	if err != nil {
		log.Fatal(err)
	}
	logEvent, err := schema.Type("LogEvent")
	if err != nil {
		log.Fatal(err)
	}

	// The producer's side (Node in real life).
	l, err := shmio.Open(shmio.Options{Path: path, Capacity: 1 << 20, Writable: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	w, err := l.Writer()
	if err != nil {
		log.Fatal(err)
	}
	for i, msg := range []string{"Application started", "cache warm"} {
		frame, err := w.Allocate(logEvent.Size())
		if err != nil {
			log.Fatal(err)
		}
		event := map[string]any{"timestamp": uint64(1764547200000000000 + i), "level": "Info", "message": msg}
		if _, err := logEvent.Encode(event, frame); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	w.Close()

	// The Go consumer: decode each frame to a value, or straight to a JSON line.
	r, err := shmio.Open(shmio.Options{Path: path})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	it, err := r.NewIterator(shmio.IteratorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer it.Close()
	batch, err := it.NextBatch(nil, shmio.BatchOptions{MaxFrames: 32})
	if err != nil {
		log.Fatal(err)
	}
	for _, frame := range batch {
		v, err := logEvent.Decode(frame)
		if err != nil {
			log.Fatal(err)
		}
		event := v.(map[string]any)
		fmt.Printf("[%s] %s\n", event["level"], event["message"])
		line, err := logEvent.AppendJSON(nil, frame)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(line))
	}
	// Output:
	// [Info] Application started
	// {"timestamp":1764547200000000000,"level":"Info","message":"Application started"}
	// [Info] cache warm
	// {"timestamp":1764547200000000001,"level":"Info","message":"cache warm"}
}
