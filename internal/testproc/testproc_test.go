package testproc

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var roles = map[string]func() error{
	"echo": func() error { // prints its parameter's lines, then a JSON result
		for _, l := range strings.Split(Param("LINES"), ",") {
			fmt.Println(l)
		}
		Report(map[string]int64{"n": ParamInt("N", 7)})
		return nil
	},
	"fail":  func() error { return errors.New("on purpose") },
	"sleep": func() error { fmt.Println("up"); time.Sleep(time.Hour); return nil },
	"stdin": func() error { // echoes stdin until EOF
		b := make([]byte, 64)
		n, _ := os.Stdin.Read(b)
		fmt.Printf("got %s\n", b[:n])
		return nil
	},
}

func TestMain(m *testing.M) { Main(m, roles) }

func TestLinesAndResult(t *testing.T) {
	c := Start(t, "echo", "LINES=a,b,c")
	if l := c.Line(10 * time.Second); l != "a" {
		t.Fatalf("first line %q", l)
	}
	if l := c.WaitLine(10*time.Second, "line c", func(s string) bool { return s == "c" }); l != "c" {
		t.Fatalf("WaitLine gave %q", l)
	}
	var res struct{ N int64 }
	c.Finish(10*time.Second, &res)
	if res.N != 7 {
		t.Fatalf("result %+v", res)
	}
}

func TestExitCodeAndStderr(t *testing.T) {
	c := Start(t, "fail")
	if code, _ := c.Exit(10 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !strings.Contains(c.Stderr(), "on purpose") {
		t.Fatalf("stderr %q", c.Stderr())
	}
	if code, _ := Start(t, "no-such-role").Exit(10 * time.Second); code != 2 {
		t.Fatalf("unknown role: exit code %d, want 2", code)
	}
}

func TestKill9AndStdin(t *testing.T) {
	c := Start(t, "sleep")
	c.Line(10 * time.Second)
	c.Kill9() // fails the test unless SIGKILL ended it
	s := Start(t, "stdin")
	s.Stdin().Write([]byte("hello"))
	s.Stdin().Close()
	if l := s.Line(10 * time.Second); l != "got hello" {
		t.Fatalf("line %q", l)
	}
}

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(time.Millisecond)
			n.Add(1)
		}
	}()
	WaitFor(t, 10*time.Second, "three ticks", func() bool { return n.Load() == 3 })
}
