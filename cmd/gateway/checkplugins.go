package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/plugin"
)

// checkPlugins loads every configured plugin as serve would and judges its
// [plugins.config] against the schema the plugin declares (sdk/ABI.md,
// "Config schema"). Problems and warnings are placed in the file; a plugin
// that declares no schema is a warning, not a problem.
func checkPlugins(ctx context.Context, cfg *config.Config) (problems, warnings config.Problems) {
	if len(cfg.Plugins) == 0 {
		return nil, nil
	}
	// Compiled code stays in memory: check writes nothing under data_dir.
	h, err := plugin.NewHost(plugin.Options{MaskKey: []byte("gateway check"), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return config.Problems{cfg.ProblemAt("plugins", err.Error())}, nil
	}
	defer h.Close(ctx)
	for i, pc := range cfg.Plugins {
		at := fmt.Sprintf("plugins[%d]", i)
		p, err := h.LoadConfigured(ctx, pc, cfg.Path)
		var ce *plugin.ConfigError
		switch {
		case errors.As(err, &ce):
			for _, cp := range ce.Problems {
				path := at + ".config"
				if cp.Path != "" {
					path += "." + cp.Path
				}
				problems = append(problems, cfg.ProblemAt(path, cp.Message))
			}
		case errors.Is(err, fs.ErrNotExist):
			file := cfg.Path(pc.Path)
			if abs, err := filepath.Abs(file); err == nil {
				file = abs
			}
			problems = append(problems, cfg.ProblemAt(at+".path", fmt.Sprintf("plugin %q: no file %s", pc.Name, file)))
		case err != nil:
			problems = append(problems, cfg.ProblemAt(at+".path", err.Error()))
		default:
			if p.Schema() == nil {
				warnings = append(warnings, cfg.ProblemAt(at, fmt.Sprintf("warning: plugin %q declares no config schema (sdk/ABI.md); its [plugins.config] keys are not checked", pc.Name)))
			}
			p.Close(ctx)
		}
	}
	return problems, warnings
}
