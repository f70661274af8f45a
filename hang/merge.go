package hang

import (
	"encoding/json"
	"fmt"
)

// decodeJSON parses one catalog frame into generic JSON.
func decodeJSON(b []byte) (any, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCatalog, err)
	}
	return v, nil
}

// mergePatch applies an RFC 7396 JSON merge patch, as @moq/json does for
// the frames after a group's snapshot: objects merge key by key, null
// deletes, anything else replaces.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// catalogOf turns generic JSON into a validated Catalog.
func catalogOf(v any) (*Catalog, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCatalog, err)
	}
	return ParseCatalog(b)
}
