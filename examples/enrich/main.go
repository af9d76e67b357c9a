// Command enrich is the log-enrichment example: POST a JSON event (an object) and get it
// back with fields added by the function:
//
//   - "region" and "node", from the env vars FERMION_REGION and FERMION_NODE, which the
//     manifest grants through capabilities.env;
//   - "received_at", the time the function saw the event (RFC 3339, UTC);
//   - "customer", the JSON object returned by an outbound GET to
//     ENRICH_LOOKUP_URL?id=<customer_id>, made through the host with fhttp's Get, so only
//     the manifest's allowed_outbound_hosts are reachable.
//
// With ENRICH_LOOKUP_URL empty (or no "customer_id" in the event) there is no lookup and
// "customer" is null. A failed lookup does not fail the request: "customer" is null,
// "enrich_error" says why, and the status is still 200. A method other than POST gets 405;
// a body that is not a JSON object gets 400 with {"error": "..."}.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	http "fermion.dev/fermion/sdk/fhttp"
)

func init() {
	http.HandleFunc(enrich)
}

// main is not called in a reactor module; the handler is registered in init.
func main() {}

func enrich(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "method " + r.Method + " not allowed; POST a JSON event"})
		return
	}
	event, err := decodeObject(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "body must be a JSON object: " + err.Error()})
		return
	}

	event["region"] = os.Getenv("FERMION_REGION")
	event["node"] = os.Getenv("FERMION_NODE")
	event["received_at"] = time.Now().UTC().Format(time.RFC3339Nano)
	event["customer"] = nil

	lookup := os.Getenv("ENRICH_LOOKUP_URL")
	if id, ok := customerID(event["customer_id"]); lookup != "" && ok {
		customer, err := fetchCustomer(lookup, id)
		if err != nil {
			event["enrich_error"] = err.Error()
		} else {
			event["customer"] = customer
		}
	}
	writeJSON(w, http.StatusOK, event)
}

// fetchCustomer GETs base?id=<id> through the host and decodes the JSON object it returns.
func fetchCustomer(base, id string) (map[string]any, error) {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	resp, err := http.Get(base + sep + "id=" + url.QueryEscape(id))
	if err != nil {
		return nil, fmt.Errorf("customer lookup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("customer lookup: status %d", resp.StatusCode)
	}
	customer, err := decodeObject(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("customer lookup: %w", err)
	}
	return customer, nil
}

// decodeObject decodes exactly one JSON object, keeping numbers as written.
func decodeObject(r io.Reader) (map[string]any, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	if obj == nil { // the literal null decodes without error
		return nil, errors.New("got null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the object")
	}
	return obj, nil
}

// customerID returns the event's customer_id as a string, if it is a string or a number.
func customerID(v any) (string, bool) {
	switch id := v.(type) {
	case string:
		return id, true
	case json.Number:
		return id.String(), true
	}
	return "", false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		out.Reset()
		enc.Encode(map[string]string{"error": err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(out.Bytes())
}
