package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Price is what a model costs, in US dollars per million tokens.
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheWrite float64 `json:"cache_write"` // 5-minute cache writes
	CacheRead  float64 `json:"cache_read"`
}

// family builds the price of a model family from its input and output prices: cache writes cost
// 1.25 times the input price, cache reads a tenth of it.
func family(in, out float64) Price { return Price{in, out, in * 1.25, in / 10} }

// DefaultPrices is the built-in price table, an estimate from the published list prices; keys are
// model names or family prefixes ("claude-opus-"), the longest match wins. Override it with
// Config.Prices (shmio agent --prices FILE).
var DefaultPrices = map[string]Price{
	"claude-opus-":   family(5, 25),
	"claude-sonnet-": family(3, 15),
	"claude-haiku-":  family(1, 5),
}

// LoadPrices reads a JSON object {"model or prefix": {"input":..,"output":..,"cache_write":..,
// "cache_read":..}} and returns DefaultPrices with those entries added or replaced.
func LoadPrices(path string) (map[string]Price, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	var over map[string]Price
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&over); err != nil {
		return nil, fmt.Errorf("price table %s: %w", path, err)
	}
	out := make(map[string]Price, len(DefaultPrices)+len(over))
	for k, v := range DefaultPrices {
		out[k] = v
	}
	for k, v := range over {
		if v.Input < 0 || v.Output < 0 || v.CacheWrite < 0 || v.CacheRead < 0 {
			return nil, fmt.Errorf("price table %s: negative price for %q", path, k)
		}
		out[k] = v
	}
	return out, nil
}

// priceOf finds a model's price: an exact entry, else the longest prefix entry.
func priceOf(table map[string]Price, model string) (Price, bool) {
	if p, ok := table[model]; ok {
		return p, true
	}
	best, found := "", false
	var p Price
	for k, v := range table {
		if strings.HasPrefix(model, k) && len(k) > len(best) {
			best, p, found = k, v, true
		}
	}
	return p, found
}

// cost estimates what an outcome's tokens cost in US dollars; discount scales it (the Batches
// API bills half). It is 0 for models without a price.
func cost(table map[string]Price, o *Outcome, discount float64) float64 {
	p, ok := priceOf(table, o.Model)
	if !ok {
		return 0
	}
	c := float64(o.InputTokens)*p.Input + float64(o.OutputTokens)*p.Output +
		float64(o.CacheCreationInputTokens)*p.CacheWrite + float64(o.CacheReadInputTokens)*p.CacheRead
	return c / 1e6 * discount
}
