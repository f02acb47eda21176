// goclient - a state-dialect client of kbridge's own, written to do what the
// Dashboard Server plan's trading TUI client does (docs/protocol.md#state-dialect):
// gorilla/websocket, ?type=tui&format=msgpack, a JSON text subscribe, every
// binary frame decoded with vmihailenco/msgpack v5 into the plan's types
// (ServerMessage with Timestamp time.Time, Data *State with typed channels,
// Changes map[string]interface{}).
//
// The plan's client only prints what it decodes; this one also keeps the
// state: a snapshot replaces it with the typed Data, an update applies each
// change the plan's way (split on '.', create missing objects where the
// value is falsy, set the leaf) to the typed state seen as plain maps, and
// the result must decode into State again (else an apply error).
//
//	goclient [-channels a,b] [-ms N] [-json] URL
//
// Commands on stdin, one per line: `send JSON` (a text frame), `dump` (the
// report line now), `stop` (the report line, then exit). The report is one
// JSON line: {"event":"final","state":<typed state>,"generic":<the same
// changes applied to the untyped decoding>,"snapshots":N,"updates":N,
// "decode_errors":N,"apply_errors":N,"seqs":[...],"zero_timestamps":N,
// "timestamps":[first and last as RFC 3339],"types":{...},"problems":[...]}.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// The plan's types, with the fields its web client's interfaces name too.
type State struct {
	MarketData map[string]*MarketData `msgpack:"market_data" json:"market_data"`
	Orders     []*Order               `msgpack:"orders" json:"orders"`
	Positions  map[string]*Position   `msgpack:"positions" json:"positions"`
	Account    *Account               `msgpack:"account" json:"account"`
}

type MarketData struct {
	Symbol    string  `msgpack:"symbol" json:"symbol"`
	LastPrice float64 `msgpack:"last_price" json:"last_price"`
	BidPrice  float64 `msgpack:"bid_price" json:"bid_price"`
	AskPrice  float64 `msgpack:"ask_price" json:"ask_price"`
}

type Order struct {
	ID       string  `msgpack:"id" json:"id"`
	Symbol   string  `msgpack:"symbol" json:"symbol"`
	Side     string  `msgpack:"side" json:"side"`
	Quantity float64 `msgpack:"quantity" json:"quantity"`
	Status   string  `msgpack:"status" json:"status"`
}

type Position struct {
	Symbol        string  `msgpack:"symbol" json:"symbol"`
	UnrealizedPnL float64 `msgpack:"unrealized_pnl" json:"unrealized_pnl"`
}

type Account struct {
	TotalBalance float64 `msgpack:"total_balance" json:"total_balance"`
}

type ServerMessage struct {
	Type      string                 `msgpack:"type" json:"type"`
	Sequence  uint64                 `msgpack:"seq" json:"seq"`
	Timestamp time.Time              `msgpack:"timestamp" json:"timestamp"`
	Data      *State                 `msgpack:"data,omitempty" json:"data,omitempty"`
	Changes   map[string]interface{} `msgpack:"changes,omitempty" json:"changes,omitempty"`
}

// The same message without types, for the "generic" state.
type looseMessage struct {
	Type    string                 `msgpack:"type" json:"type"`
	Data    map[string]interface{} `msgpack:"data" json:"data"`
	Changes map[string]interface{} `msgpack:"changes" json:"changes"`
}

type report struct {
	Event          string                 `json:"event"`
	State          *State                 `json:"state"`
	Generic        map[string]interface{} `json:"generic"`
	Snapshots      int                    `json:"snapshots"`
	Updates        int                    `json:"updates"`
	DecodeErrors   int                    `json:"decode_errors"`
	ApplyErrors    int                    `json:"apply_errors"`
	Seqs           []uint64               `json:"seqs"`
	ZeroTimestamps int                    `json:"zero_timestamps"`
	Timestamps     []string               `json:"timestamps"`
	Types          map[string]int         `json:"types"`
	Errors         []interface{}          `json:"errors"`
	Problems       []string               `json:"problems"`
	Closed         string                 `json:"closed"`
}

var (
	mu      sync.Mutex
	rep     = report{Event: "final", State: &State{}, Generic: map[string]interface{}{}, Seqs: []uint64{}, Types: map[string]int{}, Errors: []interface{}{}, Problems: []string{}}
	useJSON bool
)

func problem(format string, args ...interface{}) {
	if len(rep.Problems) < 20 {
		s := fmt.Sprintf(format, args...)
		if len(s) > 500 {
			s = s[:500]
		}
		rep.Problems = append(rep.Problems, s)
	}
}

// jsFalsy: what `!current[key]` is true for in JavaScript.
func jsFalsy(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return x == ""
	case float64:
		return x == 0 || x != x
	case float32:
		return x == 0 || x != x
	case int8:
		return x == 0
	case int16:
		return x == 0
	case int32:
		return x == 0
	case int64:
		return x == 0
	case int:
		return x == 0
	case uint8:
		return x == 0
	case uint16:
		return x == 0
	case uint32:
		return x == 0
	case uint64:
		return x == 0
	case uint:
		return x == 0
	}
	return false
}

// setNestedValue: the plan's function. Objects are map[string]interface{};
// an array is indexed by a numeric key as JavaScript would; anything else
// in the way is the TypeError strict-mode JavaScript throws.
func setNestedValue(obj map[string]interface{}, path string, value interface{}) error {
	keys := strings.Split(path, ".")
	var current interface{} = obj
	for i := 0; i < len(keys)-1; i++ {
		key := keys[i]
		switch c := current.(type) {
		case map[string]interface{}:
			if v, ok := c[key]; !ok || jsFalsy(v) {
				c[key] = map[string]interface{}{}
			}
			current = c[key]
		case []interface{}:
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || n >= len(c) {
				return fmt.Errorf("path %q: %q is not an index of an array of %d", path, key, len(c))
			}
			if jsFalsy(c[n]) {
				c[n] = map[string]interface{}{}
			}
			current = c[n]
		default:
			return fmt.Errorf("path %q: cannot create property %q on %T", path, key, current)
		}
	}
	last := keys[len(keys)-1]
	switch c := current.(type) {
	case map[string]interface{}:
		c[last] = value
	case []interface{}:
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 || n >= len(c) {
			return fmt.Errorf("path %q: %q is not an index of an array of %d", path, last, len(c))
		}
		c[n] = value
	default:
		return fmt.Errorf("path %q: cannot create property %q on %T", path, last, current)
	}
	return nil
}

// plain: the typed state as plain maps (through MessagePack, as the wire
// gave it); typed: back again, which fails when it no longer fits State.
func plain(s *State) (map[string]interface{}, error) {
	b, err := msgpack.Marshal(s)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	err = msgpack.Unmarshal(b, &m)
	return m, err
}

func typed(m map[string]interface{}) (*State, error) {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, err
	}
	s := &State{}
	err = msgpack.Unmarshal(b, s)
	return s, err
}

func decode(raw []byte, v interface{}) error {
	if useJSON {
		return json.Unmarshal(raw, v)
	}
	return msgpack.Unmarshal(raw, v)
}

func handle(op int, raw []byte) {
	mu.Lock()
	defer mu.Unlock()
	if (op == websocket.BinaryMessage) == useJSON {
		rep.DecodeErrors++
		problem("frame of opcode %d on a %s connection: %.200q", op, map[bool]string{true: "json", false: "msgpack"}[useJSON], raw)
		return
	}
	var msg ServerMessage
	if err := decode(raw, &msg); err != nil {
		rep.DecodeErrors++
		problem("decode: %v", err)
		return
	}
	var loose looseMessage
	if err := decode(raw, &loose); err != nil {
		rep.DecodeErrors++
		problem("decode (untyped): %v", err)
		return
	}
	rep.Types[msg.Type]++
	switch msg.Type {
	case "snapshot", "update":
		rep.Seqs = append(rep.Seqs, msg.Sequence)
		if msg.Timestamp.IsZero() {
			rep.ZeroTimestamps++
		}
		ts := msg.Timestamp.UTC().Format(time.RFC3339Nano)
		if len(rep.Timestamps) < 2 {
			rep.Timestamps = append(rep.Timestamps, ts)
		} else {
			rep.Timestamps[1] = ts
		}
	case "error":
		var e interface{}
		if decode(raw, &e) == nil {
			rep.Errors = append(rep.Errors, e)
		}
	}
	switch msg.Type {
	case "snapshot":
		rep.Snapshots++
		if msg.Data != nil {
			rep.State = msg.Data
		}
		if loose.Data != nil {
			rep.Generic = loose.Data
		}
	case "update":
		rep.Updates++
		if msg.Changes == nil {
			return
		}
		m, err := plain(rep.State)
		if err != nil {
			rep.ApplyErrors++
			problem("state as maps: %v", err)
			return
		}
		var applyErr error
		for path, value := range msg.Changes {
			if err := setNestedValue(m, path, value); err != nil {
				applyErr = join(applyErr, err)
			}
		}
		for path, value := range loose.Changes {
			if err := setNestedValue(rep.Generic, path, value); err != nil {
				applyErr = join(applyErr, err)
			}
		}
		s, err := typed(m)
		if err != nil {
			applyErr = join(applyErr, fmt.Errorf("state after seq %d no longer fits State: %v", msg.Sequence, err))
		} else {
			rep.State = s
		}
		if applyErr != nil {
			rep.ApplyErrors++
			problem("apply seq %d: %v", msg.Sequence, applyErr)
		}
	}
}

// join: both errors (errors.Join is newer than Debian 12's Go 1.19).
func join(a, b error) error {
	if a == nil {
		return b
	}
	return fmt.Errorf("%v; %v", a, b)
}

func printReport() {
	mu.Lock()
	defer mu.Unlock()
	b, err := json.Marshal(&rep)
	if err != nil {
		fmt.Printf("{\"event\":\"final\",\"marshal_error\":%q}\n", err.Error())
		return
	}
	os.Stdout.Write(append(b, '\n'))
}

func main() {
	channels := flag.String("channels", "market_data,orders,positions,account", "channels to subscribe to on connect")
	ms := flag.Int("ms", 0, "stop after this many milliseconds (0: on stdin's stop)")
	jsonFlag := flag.Bool("json", false, "the connection is format=json: decode text frames as JSON")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: goclient [-channels a,b] [-ms N] [-json] ws://HOST:PORT/ws?type=tui&format=msgpack")
		os.Exit(2)
	}
	useJSON = *jsonFlag
	ws, _, err := websocket.DefaultDialer.Dial(flag.Arg(0), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer ws.Close()
	var wmu sync.Mutex
	send := func(text string) {
		wmu.Lock()
		defer wmu.Unlock()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			mu.Lock()
			problem("write: %v", err)
			mu.Unlock()
		}
	}
	fmt.Println(`{"event":"open"}`)
	if *channels != "" {
		names, _ := json.Marshal(strings.Split(*channels, ","))
		send(`{"type":"subscribe","channels":` + string(names) + `}`)
	}
	go func() {
		for {
			op, raw, err := ws.ReadMessage()
			if err != nil {
				mu.Lock()
				rep.Closed = err.Error()
				mu.Unlock()
				return
			}
			handle(op, raw)
		}
	}()
	if *ms > 0 {
		go func() {
			time.Sleep(time.Duration(*ms) * time.Millisecond)
			printReport()
			os.Exit(0)
		}()
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		switch {
		case strings.HasPrefix(line, "send "):
			send(line[5:])
		case line == "dump":
			printReport()
		case line == "stop":
			printReport()
			os.Exit(0)
		}
	}
	if *ms > 0 {
		select {}
	}
	printReport()
}
