package hang

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// CatalogTrack is the name of a hang broadcast's catalog track.
const CatalogTrack = "catalog.json"

// ErrCatalog is returned (wrapped) for a catalog that does not parse or
// breaks hang's rules.
var ErrCatalog = errors.New("hang: bad catalog")

// Catalog is a hang catalog: the renditions of a broadcast. Field names and
// order follow @moq/hang's schema, so Marshal writes what the JS writes.
type Catalog struct {
	Video *Video `json:"video,omitempty"`
	Audio *Audio `json:"audio,omitempty"`
}

// Video is the catalog's video section.
type Video struct {
	// Renditions maps track names to their decoder configurations.
	Renditions map[string]VideoConfig `json:"renditions"`
	// Display is the size to render at, if not the coded size.
	Display *Display `json:"display,omitempty"`
	// Flip asks for a horizontal flip.
	Flip *bool `json:"flip,omitempty"`
	// Rotation in degrees, if any.
	Rotation *float64 `json:"rotation,omitempty"`
}

// Display is a rendering size in pixels.
type Display struct {
	Width  uint64 `json:"width"`
	Height uint64 `json:"height"`
}

// VideoConfig is one video rendition: a WebCodecs VideoDecoderConfig plus
// the container its frames use. Zero numbers are omitted.
type VideoConfig struct {
	// Codec is a WebCodecs codec string, such as "avc1.42c01e" or "vp8".
	Codec string `json:"codec"`
	// The fields below are in the order @moq/publish writes them, so a
	// catalog it made re-encodes byte for byte.
	Bitrate            uint64  `json:"bitrate,omitempty"`
	Framerate          float64 `json:"framerate,omitempty"`
	CodedWidth         uint64  `json:"codedWidth,omitempty"`
	CodedHeight        uint64  `json:"codedHeight,omitempty"`
	OptimizeForLatency *bool   `json:"optimizeForLatency,omitempty"`
	// Container says how frames are laid out; the zero value is legacy.
	Container Container `json:"container"`
	// Jitter is the most a frame may lag its timestamp at the publisher, in
	// milliseconds (one frame interval for a live encoder).
	Jitter uint64 `json:"jitter,omitempty"`
	// Description is the decoder configuration record in hex (avcC for
	// H.264); empty means in-band parameter sets (Annex B for H.264).
	Description         string `json:"description,omitempty"`
	DisplayAspectWidth  uint64 `json:"displayAspectWidth,omitempty"`
	DisplayAspectHeight uint64 `json:"displayAspectHeight,omitempty"`
	// Broadcast names another broadcast, relative to this one, that carries
	// the track; empty means this broadcast.
	Broadcast string `json:"broadcast,omitempty"`
}

// Audio is the catalog's audio section.
type Audio struct {
	// Renditions maps track names to their decoder configurations.
	Renditions map[string]AudioConfig `json:"renditions"`
}

// AudioConfig is one audio rendition: a WebCodecs AudioDecoderConfig plus
// the container its frames use.
type AudioConfig struct {
	Broadcast        string    `json:"broadcast,omitempty"`
	Codec            string    `json:"codec"`
	Container        Container `json:"container"`
	Description      string    `json:"description,omitempty"`
	SampleRate       uint64    `json:"sampleRate"`
	NumberOfChannels uint64    `json:"numberOfChannels"`
	Bitrate          uint64    `json:"bitrate,omitempty"`
	Jitter           uint64    `json:"jitter,omitempty"`
}

// Container names a frame layout. hang knows "legacy" (this package's
// frames), "cmaf" (each frame a moof+mdat, Init the base64 init segment)
// and "loc".
type Container struct {
	Kind string `json:"kind"`
	Init string `json:"init,omitempty"`
}

// Legacy is the container Encode/Decode implement.
var Legacy = Container{Kind: "legacy"}

// DescriptionBytes decodes the rendition's hex description (nil if none).
func (c VideoConfig) DescriptionBytes() ([]byte, error) {
	b, err := hex.DecodeString(c.Description)
	if err != nil {
		return nil, fmt.Errorf("%w: description: %v", ErrCatalog, err)
	}
	return b, nil
}

// Marshal encodes the catalog as the JSON a hang catalog frame carries.
func (c *Catalog) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // JSON.stringify does not escape <, >, &
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseCatalog decodes a catalog snapshot. Unknown fields are ignored, as
// hang's schema lets applications add sections of their own.
func ParseCatalog(b []byte) (*Catalog, error) {
	var c Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCatalog, err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// defaults fills what hang's schema defaults: a missing container is legacy.
func (c *Catalog) defaults() {
	if c.Video != nil {
		for name, r := range c.Video.Renditions {
			if r.Container.Kind == "" {
				r.Container = Legacy
				c.Video.Renditions[name] = r
			}
		}
	}
	if c.Audio != nil {
		for name, r := range c.Audio.Renditions {
			if r.Container.Kind == "" {
				r.Container = Legacy
				c.Audio.Renditions[name] = r
			}
		}
	}
}

// Validate checks what hang's schema requires: a codec per rendition, hex
// descriptions, an init segment for cmaf.
func (c *Catalog) Validate() error {
	check := func(kind, name, codec, desc string, ct Container) error {
		switch {
		case name == "":
			return fmt.Errorf("%w: %s rendition with an empty track name", ErrCatalog, kind)
		case codec == "":
			return fmt.Errorf("%w: %s rendition %q has no codec", ErrCatalog, kind, name)
		case ct.Kind == "cmaf" && ct.Init == "":
			return fmt.Errorf("%w: %s rendition %q: cmaf container without init", ErrCatalog, kind, name)
		}
		if _, err := hex.DecodeString(desc); err != nil {
			return fmt.Errorf("%w: %s rendition %q: description is not hex", ErrCatalog, kind, name)
		}
		return nil
	}
	if c.Video != nil {
		for name, r := range c.Video.Renditions {
			if err := check("video", name, r.Codec, r.Description, r.Container); err != nil {
				return err
			}
		}
	}
	if c.Audio != nil {
		for name, r := range c.Audio.Renditions {
			if err := check("audio", name, r.Codec, r.Description, r.Container); err != nil {
				return err
			}
		}
	}
	return nil
}

// UnmarshalJSON reads the video section, also in the older form @moq/hang
// still accepts: an array of {"track":{"name":…},"config":{…}}, whose first
// config's display aspect becomes the display size.
func (v *Video) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		var old []struct {
			Track struct {
				Name string `json:"name"`
			} `json:"track"`
			Config VideoConfig `json:"config"`
		}
		if err := json.Unmarshal(b, &old); err != nil {
			return err
		}
		*v = Video{Renditions: make(map[string]VideoConfig, len(old))}
		for _, r := range old {
			v.Renditions[r.Track.Name] = r.Config
		}
		if len(old) > 0 && old[0].Config.DisplayAspectWidth != 0 && old[0].Config.DisplayAspectHeight != 0 {
			v.Display = &Display{Width: old[0].Config.DisplayAspectWidth, Height: old[0].Config.DisplayAspectHeight}
		}
		return nil
	}
	type plain Video // without this method
	return json.Unmarshal(b, (*plain)(v))
}

// UnmarshalJSON reads the audio section, also in the older form @moq/hang
// still accepts: one {"track":{"name":…},"config":{…}}.
func (a *Audio) UnmarshalJSON(b []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if _, ok := probe["renditions"]; !ok {
		if _, old := probe["track"]; old {
			var o struct {
				Track struct {
					Name string `json:"name"`
				} `json:"track"`
				Config AudioConfig `json:"config"`
			}
			if err := json.Unmarshal(b, &o); err != nil {
				return err
			}
			*a = Audio{Renditions: map[string]AudioConfig{o.Track.Name: o.Config}}
			return nil
		}
	}
	type plain Audio
	return json.Unmarshal(b, (*plain)(a))
}
