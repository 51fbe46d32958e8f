package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// A transport is one kind of throughput stream between a producer and its consumers: prepare makes
// a run's resources and says which child roles do the work. A new kind (a bare raw-mapping loop,
// say) registers one more entry from an init function, next to its roles.
type transport func(r *runner, n int64, size, readers int) (plan, error)

// plan is one throughput run: the producer's and consumers' roles and configs, the descriptors
// they inherit, the consumers' spin (reported in the row) and what to remove afterwards.
type plan struct {
	prodRole, consRole string
	prodCfg, consCfg   any
	prodFiles          []*os.File // every one to the producer
	consFiles          []*os.File // one per consumer
	spin               time.Duration
	cleanup            func()
}

var transports = map[string]transport{
	"shmio": shmPlan,
	"unix":  streamPlan("unix"),
	"pipe":  streamPlan("pipe"),
	"tcp":   streamPlan("tcp"),
}

// shmBatch is how many frames a shmio or ceiling consumer takes per batch.
const shmBatch = 256

func shmPlan(r *runner, n int64, size, readers int) (plan, error) {
	path, err := r.newLog(logCapacity(n, size))
	if err != nil {
		return plan{}, err
	}
	spin := r.consumerSpin(readers)
	cfg := shmConfig{Path: path, Frames: n, Size: size, CommitEvery: r.cfg.CommitEvery, Spin: spin, Batch: shmBatch}
	return plan{prodRole: "shm-producer", consRole: "shm-consumer", prodCfg: cfg, consCfg: cfg, spin: spin,
		cleanup: func() { os.Remove(path) }}, nil
}

func streamPlan(transport string) transport {
	return func(r *runner, n int64, size, readers int) (plan, error) {
		prodFiles, consFiles, err := streamPairs(transport, readers, r.sockDir)
		if err != nil {
			return plan{}, err
		}
		cfg := streamConfig{Transport: transport, Frames: n, Size: size, CommitEvery: r.cfg.CommitEvery, Conns: readers}
		return plan{prodRole: "stream-producer", consRole: "stream-consumer", prodCfg: cfg, consCfg: cfg,
			prodFiles: prodFiles, consFiles: consFiles,
			cleanup: func() {
				for _, f := range append(prodFiles, consFiles...) {
					f.Close()
				}
			}}, nil
	}
}

// runTimeout bounds one run so a wedged child cannot hang the command (or the test suite).
func runTimeout(frames int64, size int) time.Duration {
	return 30*time.Second + time.Duration(frames*int64(size+4)/(20<<20))*time.Second
}

func (r *runner) throughput(ctx context.Context, transport string, size, readers int) Result {
	n := r.cfg.FramesFor(size)
	res := Result{Kind: "throughput", Transport: transport, Size: size, Readers: readers, Frames: n}
	r.report(fmt.Sprintf("throughput %s, %s frames, %d reader(s)", transport, FormatSize(size), readers))
	limit := runTimeout(n, size)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("gave up after %v", limit))
	defer cancel()
	var children []*childProc
	defer func() { killAll(children) }()

	p, err := transports[transport](r, n, size, readers)
	if err != nil {
		return res.fail(err)
	}
	if p.cleanup != nil {
		defer p.cleanup()
	}
	res.ConsumerSpin = p.spin

	consumers := make([]*childProc, readers)
	for i := range readers {
		var files []*os.File
		if p.consFiles != nil {
			files = p.consFiles[i : i+1]
		}
		c, err := startChild(ctx, fmt.Sprintf("%s consumer %d", transport, i+1), p.consRole, p.consCfg, files...)
		if err != nil {
			return res.fail(err)
		}
		consumers[i] = c
		children = append(children, c)
		if p.consFiles != nil {
			p.consFiles[i].Close() // the child has its copy; ours would keep a pipe open past the writer
		}
	}
	for _, c := range consumers {
		if err := c.waitReady(ctx); err != nil {
			return res.fail(err)
		}
	}
	prod, err := startChild(ctx, transport+" producer", p.prodRole, p.prodCfg, p.prodFiles...)
	if err != nil {
		return res.fail(err)
	}
	children = append(children, prod)
	for _, f := range p.prodFiles {
		f.Close()
	}
	if err := prod.waitReady(ctx); err != nil {
		return res.fail(err)
	}
	var pr producerResult
	if err := prod.result(ctx, &pr, nil); err != nil {
		return res.fail(err)
	}
	res.Verified = true
	end, cons := pr.EndNs, usage{}
	for _, c := range consumers {
		var cr consumerResult
		if err := c.result(ctx, &cr, nil); err != nil {
			return res.fail(err)
		}
		ok := cr.verified(n)
		res.Verified = res.Verified && ok
		res.Consumers = append(res.Consumers, ConsumerReport{Frames: cr.Frames, Gaps: cr.Gaps, Bad: cr.Bad, FirstBad: cr.FirstBad, Verified: ok})
		end = max(end, cr.EndNs)
		cons = usage{CPUNs: cons.CPUNs + cr.CPUNs, Waits: cons.Waits + cr.Waits, Preempted: cons.Preempted + cr.Preempted}
	}
	if n > 0 {
		perFrame := func(v int64, procs int) float64 { return float64(v) / float64(procs) / float64(n) }
		res.ProducerCPUPerFrame = perFrame(pr.CPUNs, 1)
		res.ConsumerCPUPerFrame = perFrame(cons.CPUNs, readers)
		res.ProducerWaits = 1e6 * perFrame(pr.Waits, 1)
		res.ConsumerWaits = 1e6 * perFrame(cons.Waits, readers)
		res.Preemptions = 1e6 * perFrame(pr.Preempted+cons.Preempted, 1)
	}
	res.CPUSeconds = childrenCPU(children)
	elapsed := float64(end-pr.StartNs) / 1e9
	res.ProducerSeconds = float64(pr.EndNs-pr.StartNs) / 1e9
	if elapsed > 0 {
		res.Seconds = elapsed
		res.FramesPerSec = float64(n) / elapsed
		res.BytesPerSec = float64(n) * float64(size) / elapsed
	}
	return res
}
