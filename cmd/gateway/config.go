package main

import (
	"flag"
	"os"

	"github.com/tollgate-dev/tollgate"
	"github.com/tollgate-dev/tollgate/host/config"
)

// configFlag registers -c. When it is left at its default and ./gateway.toml
// does not exist, the config embedded in the binary is used.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "gateway.toml", "path to the config file")
}

func loadConfig(fs *flag.FlagSet, path string) (*config.Config, error) {
	explicit := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "c" {
			explicit = true
		}
	})
	if _, err := os.Stat(path); !explicit && os.IsNotExist(err) {
		return config.Parse("gateway.toml (embedded)", tollgate.DefaultConfig, ".")
	}
	return config.Load(path)
}
