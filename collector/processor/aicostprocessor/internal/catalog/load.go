package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Python package's catalog, copied byte for byte by `go generate` (catalog_sync_test.go fails
// when the copy and src/otel_ai_cost/pricing/data/catalog.json differ).
//
//go:generate cp ../../../../../src/otel_ai_cost/pricing/data/catalog.json catalog.json
//go:embed catalog.json
var bundled []byte

// BundledName is how errors and logs name the embedded file.
const BundledName = "catalog.json (embedded copy of src/otel_ai_cost/pricing/data/catalog.json)"

// Bundled returns the embedded catalog file.
func Bundled() []byte { return bundled }

// Error is a malformed catalog file: the file, the key (a JSON path such as
// models[12].prices.input) and the reason.
type Error struct {
	File, Key, Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Reason) }

var (
	pricePattern    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	providerPattern = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	datePattern     = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// File is one parsed catalog file.
type File struct {
	Version string
	Models  []*Model
}

type parser struct {
	file string
}

func (p *parser) fail(key, format string, args ...any) error {
	if key == "" {
		key = "(top level)"
	}
	return &Error{File: p.file, Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Parse validates a catalog document against catalog.schema.json's rules (and the semantic checks
// of otel_ai_cost.pricing.validate_document) and returns its models.
func Parse(data []byte, file string) (*File, error) {
	p := &parser{file: file}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if se, ok := err.(*json.SyntaxError); ok {
			line, col := position(data, se.Offset)
			return nil, &Error{File: file, Key: fmt.Sprintf("line %d column %d", line, col), Reason: "invalid JSON: " + se.Error()}
		}
		return nil, &Error{File: file, Key: "(file)", Reason: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, p.fail("", "invalid JSON: extra data after the document")
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, p.fail("", "must be an object")
	}
	if err := p.keys(top, "", []string{"schema_version", "models"}, "schema_version", "catalog_version", "currency", "imported_from", "models"); err != nil {
		return nil, err
	}
	if n, ok := top["schema_version"].(json.Number); !ok || n.String() != "1" {
		return nil, p.fail("schema_version", "must be 1, got %v", top["schema_version"])
	}
	out := &File{}
	if v, ok := top["catalog_version"]; ok {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, p.fail("catalog_version", "must be a non-empty string, got %v", v)
		}
		out.Version = s
	}
	if v, ok := top["currency"]; ok && v != "USD" {
		return nil, p.fail("currency", "must be \"USD\", got %v", v)
	}
	if v, ok := top["imported_from"]; ok {
		if _, ok := v.(string); !ok {
			return nil, p.fail("imported_from", "must be a string, got %v", v)
		}
	}
	models, ok := top["models"].([]any)
	if !ok {
		return nil, p.fail("models", "must be an array")
	}
	seen := map[[2]string]string{}
	for i, raw := range models {
		where := fmt.Sprintf("models[%d]", i)
		m, err := p.model(raw, where)
		if err != nil {
			return nil, err
		}
		names := append([]string{m.ID}, m.Aliases...)
		for j, name := range names {
			key := where + ".id"
			if j > 0 {
				key = fmt.Sprintf("%s.aliases[%d]", where, j-1)
			}
			if first, dup := seen[[2]string{m.Provider, name}]; dup {
				return nil, p.fail(key, "%q is already used by %s in provider %q; ids and aliases must be unique within a provider", name, first, m.Provider)
			}
			seen[[2]string{m.Provider, name}] = where
		}
		out.Models = append(out.Models, m)
	}
	return out, nil
}

func position(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func (p *parser) keys(obj map[string]any, where string, required []string, allowed ...string) error {
	for _, r := range required {
		if _, ok := obj[r]; !ok {
			return p.fail(where, "%q is a required property", r)
		}
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		found := false
		for _, a := range allowed {
			if a == k {
				found = true
				break
			}
		}
		if !found {
			return p.fail(join(where, k), "unknown property %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func (p *parser) model(raw any, where string) (*Model, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, p.fail(where, "must be an object")
	}
	if err := p.keys(obj, where, []string{"id", "provider", "prices"}, "id", "provider", "mode", "aliases", "prices",
		"service_tiers", "context_tiers", "max_input_tokens", "max_output_tokens", "source", "effective_date",
		"effective_from", "price_history"); err != nil {
		return nil, err
	}
	m := &Model{Mode: "chat"}
	var err error
	if m.ID, err = p.str(obj["id"], join(where, "id")); err != nil {
		return nil, err
	}
	hint := ""
	if prov, ok := obj["provider"].(string); ok {
		hint = fmt.Sprintf(" (model %s/%s)", prov, m.ID)
	}
	if m.Provider, err = p.str(obj["provider"], join(where, "provider")); err != nil {
		return nil, err
	}
	if !providerPattern.MatchString(m.Provider) {
		return nil, p.fail(join(where, "provider"), "%q does not match '^[a-z0-9_]+(\\.[a-z0-9_]+)*$'%s", m.Provider, hint)
	}
	if v, ok := obj["mode"]; ok {
		if m.Mode, err = p.str(v, join(where, "mode")); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["aliases"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, p.fail(join(where, "aliases"), "must be an array of strings%s", hint)
		}
		uniq := map[string]bool{}
		for j, a := range list {
			s, err := p.str(a, fmt.Sprintf("%s.aliases[%d]", where, j))
			if err != nil {
				return nil, err
			}
			if uniq[s] {
				return nil, p.fail(fmt.Sprintf("%s.aliases[%d]", where, j), "%q is listed twice (aliases must be unique)%s", s, hint)
			}
			uniq[s] = true
			m.Aliases = append(m.Aliases, s)
		}
	}
	if err := p.period(obj, where, hint, m); err != nil {
		return nil, err
	}
	for _, k := range []string{"max_input_tokens", "max_output_tokens"} {
		if v, ok := obj[k]; ok {
			if _, err := p.integer(v, join(where, k), 0, hint); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := obj["source"]; ok {
		if _, err := p.str(v, join(where, "source")); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["effective_date"]; ok {
		if _, err := p.day(v, join(where, "effective_date"), hint); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["effective_from"]; ok {
		if m.EffectiveFrom, err = p.day(v, join(where, "effective_from"), hint); err != nil {
			return nil, err
		}
	}
	if v, ok := obj["price_history"]; ok {
		if err := p.history(v, where, hint, m); err != nil {
			return nil, err
		}
	}
	m.prepare()
	return m, nil
}

// day reads a calendar date YYYY-MM-DD.
func (p *parser) day(v any, key, hint string) (string, error) {
	s, ok := v.(string)
	if !ok || !datePattern.MatchString(s) {
		return "", p.fail(key, "must be a date YYYY-MM-DD, got %v%s", describe(v), hint)
	}
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", p.fail(key, "%q is not a calendar date YYYY-MM-DD%s", s, hint)
	}
	return s, nil
}

// history reads price_history: the earlier price periods, oldest first, none overlapping.
func (p *parser) history(v any, where, hint string, m *Model) error {
	key := join(where, "price_history")
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return p.fail(key, "must be a non-empty array of price periods%s", hint)
	}
	if m.EffectiveFrom == "" {
		return p.fail(join(where, "effective_from"), "required when price_history is given: the day the current prices took effect%s", hint)
	}
	previous := ""
	for k, raw := range list {
		pkey := fmt.Sprintf("%s[%d]", key, k)
		obj, ok := raw.(map[string]any)
		if !ok {
			return p.fail(pkey, "must be an object%s", hint)
		}
		if err := p.keys(obj, pkey, []string{"effective_from", "prices"}, "effective_from", "prices", "service_tiers", "context_tiers", "source"); err != nil {
			return err
		}
		period := &Model{ID: m.ID, Provider: m.Provider, Mode: m.Mode, Aliases: m.Aliases}
		var err error
		if period.EffectiveFrom, err = p.day(obj["effective_from"], pkey+".effective_from", hint); err != nil {
			return err
		}
		start := period.EffectiveFrom
		if previous != "" && start <= previous {
			return p.fail(pkey+".effective_from", "price periods overlap: %s starts %s, not after the period before it (%s); list price_history oldest first, one period per day%s", pkey, start, previous, hint)
		}
		if start >= m.EffectiveFrom {
			return p.fail(pkey+".effective_from", "price periods overlap: %s starts %s, not before the current prices' effective_from %s%s", pkey, start, m.EffectiveFrom, hint)
		}
		previous = start
		if err := p.period(obj, pkey, hint, period); err != nil {
			return err
		}
		if v, ok := obj["source"]; ok {
			if _, err := p.str(v, pkey+".source"); err != nil {
				return err
			}
		}
		period.prepare()
		m.History = append(m.History, period)
	}
	return nil
}

func (p *parser) str(v any, key string) (string, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return "", p.fail(key, "must be a non-empty string, got %v", describe(v))
	}
	return s, nil
}

func (p *parser) integer(v any, key string, minimum int64, hint string) (int64, error) {
	n, ok := v.(json.Number)
	if ok {
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			if i < minimum {
				return 0, p.fail(key, "%d is less than the minimum of %d%s", i, minimum, hint)
			}
			return i, nil
		}
	}
	return 0, p.fail(key, "must be an integer, got %v%s", describe(v), hint)
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (p *parser) tiers(v any, where, hint string) (map[string]*PriceSet, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, p.fail(where, "must be an object%s", hint)
	}
	if err := p.keys(obj, where, nil, "batch", "flex", "priority"); err != nil {
		return nil, err
	}
	out := map[string]*PriceSet{}
	for name, raw := range obj {
		ps := &PriceSet{}
		if err := p.prices(raw, join(where, name), hint, ps); err != nil {
			return nil, err
		}
		out[name] = ps
	}
	return out, nil
}

func (p *parser) prices(v any, where, hint string, out *PriceSet) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return p.fail(where, "must be an object of prices%s", hint)
	}
	if len(obj) == 0 {
		return p.fail(where, "must give at least one price%s", hint)
	}
	if err := p.keys(obj, where, nil, FieldNames[:]...); err != nil {
		return err
	}
	for f := Field(0); f < NumFields; f++ {
		raw, ok := obj[FieldNames[f]]
		if !ok {
			continue
		}
		key := join(where, FieldNames[f])
		s, isString := raw.(string)
		if n, isNumber := raw.(json.Number); isNumber {
			// A JSON number, as user price files may give (the Python loader reads them too): its
			// exact decimal value, so 2.5, 25e-1 and "2.5" are one price.
			var err error
			if s, err = numberText(n); err != nil {
				return p.fail(key, "%v%s", err, hint)
			}
		} else if !isString {
			return p.fail(key, "price must be a non-negative number or decimal string such as 2.5 or \"2.5\", got %s%s",
				describe(raw), hint)
		}
		if !pricePattern.MatchString(s) {
			return p.fail(key, "price must be a non-negative decimal string such as \"2.5\", got %q%s", s, hint)
		}
		femto, err := toFemto(s, f.PerUnit())
		if err != nil {
			return p.fail(key, "%v%s", err, hint)
		}
		out.Has[f], out.Femto[f] = true, femto
	}
	return nil
}

// numberText is a JSON number as a plain decimal string ("25e-1" -> "2.5"), refusing negative
// numbers and ones with more than 15 decimal places (toFemto then applies the field's own limit).
func numberText(n json.Number) (string, error) {
	r, ok := new(big.Rat).SetString(n.String())
	if !ok {
		return "", fmt.Errorf("price %s is not a number", n)
	}
	if r.Sign() < 0 {
		return "", fmt.Errorf("price must be non-negative, got %s", n)
	}
	if !new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(15), nil))).IsInt() {
		return "", fmt.Errorf("price %s has more than 15 decimal places, which cannot be held exactly", n)
	}
	text := r.FloatString(15)
	text = strings.TrimRight(strings.TrimRight(text, "0"), ".")
	return text, nil
}

// toFemto converts a price string to femto-USD per token (token prices, given per million
// tokens) or per unit. It refuses what it cannot hold exactly.
func toFemto(s string, perUnit bool) (uint64, error) {
	scale := 9 // per million tokens -> per token in 1e-15: x 1e15 / 1e6
	if perUnit {
		scale = 15
	}
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return 0, fmt.Errorf("price %q has more than %d decimal places, which cannot be held exactly", s, scale)
	}
	digits := strings.TrimLeft(whole+frac+strings.Repeat("0", scale-len(frac)), "0")
	if digits == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("price %q is too large", s)
	}
	return n, nil
}

// period reads the prices of one price period (a model entry, or one of its price_history items):
// prices, service_tiers and context_tiers.
func (p *parser) period(obj map[string]any, where, hint string, m *Model) error {
	var err error
	if err := p.prices(obj["prices"], join(where, "prices"), hint, &m.Prices); err != nil {
		return err
	}
	if v, ok := obj["service_tiers"]; ok {
		if m.ServiceTiers, err = p.tiers(v, join(where, "service_tiers"), hint); err != nil {
			return err
		}
	}
	if v, ok := obj["context_tiers"]; ok {
		list, ok := v.([]any)
		if !ok {
			return p.fail(join(where, "context_tiers"), "must be an array%s", hint)
		}
		previous := int64(0)
		for j, raw := range list {
			key := fmt.Sprintf("%s.context_tiers[%d]", where, j)
			tobj, ok := raw.(map[string]any)
			if !ok {
				return p.fail(key, "must be an object%s", hint)
			}
			if err := p.keys(tobj, key, []string{"above_input_tokens", "prices"}, "above_input_tokens", "prices", "service_tiers"); err != nil {
				return err
			}
			var ct ContextTier
			if ct.AboveInputTokens, err = p.integer(tobj["above_input_tokens"], key+".above_input_tokens", 1, hint); err != nil {
				return err
			}
			if ct.AboveInputTokens <= previous {
				return p.fail(key+".above_input_tokens", "thresholds must be strictly ascending, got %d after %d", ct.AboveInputTokens, previous)
			}
			previous = ct.AboveInputTokens
			if err := p.prices(tobj["prices"], key+".prices", hint, &ct.Prices); err != nil {
				return err
			}
			if v, ok := tobj["service_tiers"]; ok {
				if ct.ServiceTiers, err = p.tiers(v, key+".service_tiers", hint); err != nil {
					return err
				}
			}
			m.ContextTiers = append(m.ContextTiers, ct)
		}
	}
	return nil
}
