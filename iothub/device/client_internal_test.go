package device

import (
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 30 * time.Second
	zero := func(int64) int64 { return 0 }
	top := func(k int64) int64 { return k - 1 }
	tests := []struct {
		n        int
		min, max time.Duration // expected range
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{8, 12800 * time.Millisecond, 25600 * time.Millisecond},
		{9, 15 * time.Second, 30 * time.Second},  // 51.2s, capped
		{70, 15 * time.Second, 30 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if got := backoff(tt.n, lo, hi, zero); got != tt.min {
			t.Errorf("backoff(%d) low end: got %v, want %v", tt.n, got, tt.min)
		}
		if got := backoff(tt.n, lo, hi, top); got != tt.max {
			t.Errorf("backoff(%d) high end: got %v, want %v", tt.n, got, tt.max)
		}
	}
}

func TestNew_DialAddress(t *testing.T) {
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		cs, addr, serverName string
	}{
		{"HostName=hub.example;DeviceId=d;SharedAccessKey=" + key, "hub.example:8883", "hub.example"},
		{"HostName=localhost:18883;DeviceId=d;SharedAccessKey=" + key, "localhost:18883", "localhost"},
		{"HostName=hub.example;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1"},
		{"HostName=hub.example;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=gw.local", "gw.local:8883", "gw.local"},
		{"HostName=hub.example;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=[::1]:9000", "[::1]:9000", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.cs, func(t *testing.T) {
			cs, err := iothub.ParseConnectionString(tt.cs)
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(Config{ConnectionString: cs})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.addr != tt.addr || c.tlsConf.ServerName != tt.serverName {
				t.Errorf("dial: got %s (name %s), want %s (name %s)", c.addr, c.tlsConf.ServerName, tt.addr, tt.serverName)
			}
			if want := "hub.example/d/?api-version=" + iothub.APIVersion; cs.HostName == "hub.example" && c.username != want {
				t.Errorf("username: got %q, want %q", c.username, want)
			}
		})
	}
}

func TestClient_FixedToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok, err := iothub.NewSAS("hub/devices/d", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := iothub.ParseConnectionString("HostName=hub;DeviceId=d;SharedAccessSignature=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	c, err := New(Config{ConnectionString: cs, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _, err := c.token()
	if err != nil || got != tok {
		t.Errorf("token before expiry: got %q, %v, want the connection string's token", got, err)
	}
	clock = now.Add(time.Minute)
	if _, _, err := c.token(); err == nil {
		t.Errorf("token at expiry: got nil error, want ErrTokenExpired")
	}
}
