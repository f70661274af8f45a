package jspeer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// DevTools is the flag that lets Screenshot and Eval reach a browser
// through the DevTools protocol (on a loopback port Chromium picks).
const DevTools = "--remote-debugging-port=0"

// devtoolsPage returns the DevTools WebSocket URL of the browser's first
// page, waiting for Chromium to write its port.
func (b *Browser) devtoolsPage(ctx context.Context) (string, error) {
	for {
		port, err := os.ReadFile(filepath.Join(b.dataDir, "DevToolsActivePort"))
		if err == nil && strings.Contains(string(port), "\n") {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strings.SplitN(string(port), "\n", 2)[0]+"/json/list", nil)
			if err != nil {
				return "", err
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				var targets []struct {
					Type string `json:"type"`
					WS   string `json:"webSocketDebuggerUrl"`
				}
				err = json.NewDecoder(resp.Body).Decode(&targets)
				_ = resp.Body.Close()
				for _, t := range targets {
					if err == nil && t.Type == "page" && t.WS != "" {
						return t.WS, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("jspeer: no DevTools page (launched with %s?): %w", DevTools, ctx.Err())
		case <-b.done:
			return "", errors.New("jspeer: the browser exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// call runs one DevTools method on the browser's page and decodes its
// result into out.
func (b *Browser) call(ctx context.Context, method string, params any, out any) error {
	ws, err := b.devtoolsPage(ctx)
	if err != nil {
		return err
	}
	c, _, err := websocket.Dial(ctx, ws, nil)
	if err != nil {
		return fmt.Errorf("jspeer: DevTools: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20) // screenshots
	msg, err := json.Marshal(map[string]any{"id": 1, "method": method, "params": params})
	if err != nil {
		return err
	}
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("jspeer: DevTools: %w", err)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("jspeer: DevTools %s: %w", method, err)
		}
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &reply); err != nil || reply.ID != 1 {
			continue // an event
		}
		if reply.Error != nil {
			return fmt.Errorf("jspeer: DevTools %s: %s", method, reply.Error.Message)
		}
		return json.Unmarshal(reply.Result, out)
	}
}

// Screenshot returns a PNG of the browser's page as it shows now. The
// browser must have been launched with DevTools among its Args.
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := b.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Eval evaluates a JavaScript expression in the page and decodes its
// (JSON-serializable) value into out. The browser must have been launched
// with DevTools among its Args.
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("jspeer: %s: %s", expr, r.Exception.Text)
	}
	return json.Unmarshal(r.Result.Value, out)
}
