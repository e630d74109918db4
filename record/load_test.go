package record_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/record"
)

// loadRecords is the number of records per goroutine of TestLoad: 100,000
// with KSSE_LOAD=full, 2,000 by default (a bounded run for CI, also under
// -race), 300 with -short.
func loadRecords() int {
	switch {
	case os.Getenv("KSSE_LOAD") == "full":
		return 100_000
	case testing.Short():
		return 300
	}
	return 2000
}

// loadPayload fills a payload for record i of goroutine g: its size varies
// from 0 to 1,499 bytes and its bytes name the record, so a record decrypted
// for another one cannot match.
func loadPayload(buf []byte, g, i int) []byte {
	n := (g*7919 + i*104729) % 1500
	p := buf[:n]
	var id [8]byte
	binary.BigEndian.PutUint32(id[:4], uint32(g))
	binary.BigEndian.PutUint32(id[4:], uint32(i))
	for j := range p {
		p[j] = id[j%8] ^ byte(j)
	}
	return p
}

// TestLoad runs 64 goroutines that each encrypt and decrypt their records
// through one shared Encryptor and one shared Decryptor (in-process KMS),
// over 4 streams, and counts mismatches: there must be none. Then Close
// must leave no goroutine running.
func TestLoad(t *testing.T) {
	const goroutines = 64
	n := loadRecords()
	before := runtime.NumGoroutine()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	dec, err := record.NewDecryptor(k, anyKey)
	require.NoError(t, err)
	ctx := context.Background()

	var mismatches, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			stream := fmt.Sprintf("stream-%d", g%4)
			for i := range n {
				pk := fmt.Sprintf("g%02d-r%06d", g, i)
				payload := loadPayload(buf, g, i)
				r, err := enc.Encrypt(ctx, stream, pk, payload)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				d, err := dec.Decrypt(ctx, stream, r.Data)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if d.PartitionKey != pk || !bytes.Equal(d.Data, payload) || !d.Encrypted || d.KeyARN != arn {
					mismatches.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := goroutines * n
	require.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	require.Zero(t, mismatches.Load())
	es, ds := enc.Stats(), dec.Stats()
	require.EqualValues(t, 4, es.KMSCalls, "one data key per stream")
	require.EqualValues(t, 4, ds.KMSCalls, "one Decrypt per wrapped key")
	require.EqualValues(t, total, es.Hits+es.Misses)

	require.NoError(t, enc.Close())
	require.NoError(t, dec.Close())
	loadGoroutinesBack(t, before)
	t.Logf("load: %d goroutines × %d records = %d encrypt→decrypt round trips, 0 mismatches, 0 errors, in %v (%.0f records/s, race detector: %v); KMS: %d GenerateDataKey, %d Decrypt",
		goroutines, n, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), loadRace,
		k.Calls("GenerateDataKey"), k.Calls("Decrypt"))
}

// loadRace reports whether the test binary was built with -race.
var loadRace = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// TestCloseLeavesNoGoroutine closes an Encryptor while a background refresh
// is in flight (slowed by KMS latency) and a Decryptor while Decrypt calls
// are: Close must wait for them, and no goroutine may be left.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	clock := newFltClock()
	enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.Now = clock.Now })
	require.NoError(t, err)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn}; o.Now = clock.Now })
	require.NoError(t, err)
	ctx := context.Background()
	r, err := enc.Encrypt(ctx, "orders", "pk", []byte("x"))
	require.NoError(t, err)

	k.SetLatency(200 * time.Millisecond)
	clock.Advance(keycache.DefaultTTL - time.Second) // in the refresh window
	_, err = enc.Encrypt(ctx, "orders", "pk", []byte("x"))
	require.NoError(t, err) // starts a background refresh, which waits on KMS
	fltWait(t, "the background refresh to reach KMS", func() bool { return k.Calls("GenerateDataKey") == 2 })

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			defer cancel()
			dec.Decrypt(dctx, "orders", r.Data) // gives up; its Decrypt call goes on
		}()
	}
	wg.Wait()
	require.NoError(t, enc.Close())
	require.NoError(t, dec.Close())
	loadGoroutinesBack(t, before)
	_, err = enc.Encrypt(ctx, "orders", "pk", []byte("x"))
	require.ErrorIs(t, err, keycache.ErrClosed)
	_, err = dec.Decrypt(ctx, "orders", r.Data)
	require.ErrorIs(t, err, keycache.ErrClosed)
	t.Logf("Close with a refresh and Decrypt calls in flight: goroutines back to %d", runtime.NumGoroutine())
}

// loadGoroutinesBack waits up to 5 s for the goroutine count to fall back to
// before.
func loadGoroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
