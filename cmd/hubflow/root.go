package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// rootCommand builds the command tree. Every subcommand is constructed from
// the app so that tests can run the CLI in-process with injected streams.
func (a *app) rootCommand() *ffcli.Command {
	fs := flag.NewFlagSet("hubflow", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	root := &ffcli.Command{
		Name:       "hubflow",
		ShortUsage: "hubflow <command> [flags] [args]",
		ShortHelp:  "Declarative device-management jobs for Azure IoT Hub fleets.",
		LongHelp: strings.TrimSpace(`
hubflow runs device-management jobs written in HCL (direct methods such as
rebootDevice or firmwareUpdate, or desired-property patches) against an Azure
IoT Hub fleet, inside maintenance windows and at a safe pace, follows each
device's progress through its reported properties, and records every run in
SQLite.

With no hub connection string, hubflow starts an embedded IoT Hub emulator
with a simulated fleet, so every command works on a laptop.

Examples:
  hubflow run examples/firmware-update.hcl
  hubflow history -o table`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q; run 'hubflow help' for the list of commands", args[0])
			}
			return flag.ErrHelp
		},
	}
	root.Subcommands = a.subcommands(root)
	root.UsageFunc = usageFunc
	for _, c := range root.Subcommands {
		if c.UsageFunc == nil {
			c.UsageFunc = usageFunc
		}
		if c.FlagSet != nil {
			c.FlagSet.SetOutput(a.stderr)
		}
	}
	return root
}

func (a *app) subcommands(root *ffcli.Command) []*ffcli.Command {
	return []*ffcli.Command{
		a.runCommand(),
		a.planCommand(),
		a.serveCommand(),
		a.validateCommand(),
		a.fmtCommand(),
		a.historyCommand(),
		a.showCommand(),
		a.deviceCommand(),
		a.cancelCommand(),
		a.resumeCommand(),
		a.pruneCommand(),
		a.emulatorCommand(),
		a.simulateCommand(),
		a.benchCommand(),
		a.versionCommand(),
		a.completionCommand(root),
		a.helpCommand(root),
	}
}

func (a *app) versionCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "version",
		ShortUsage: "hubflow version",
		ShortHelp:  "Print hubflow's version.",
		LongHelp:   "Prints the module version and the Go version hubflow was built with.\n\nExample:\n  hubflow version",
		FlagSet:    flag.NewFlagSet("version", flag.ContinueOnError),
		Exec: func(ctx context.Context, args []string) error {
			version, goVersion := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					version = bi.Main.Version
				}
				goVersion = bi.GoVersion
			}
			fmt.Fprintf(a.stdout, "hubflow %s %s\n", version, goVersion)
			return nil
		},
	}
}

func (a *app) helpCommand(root *ffcli.Command) *ffcli.Command {
	return &ffcli.Command{
		Name:       "help",
		ShortUsage: "hubflow help [command]",
		ShortHelp:  "Show help for hubflow or one of its commands.",
		LongHelp:   "Examples:\n  hubflow help\n  hubflow help run",
		FlagSet:    flag.NewFlagSet("help", flag.ContinueOnError),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(a.stdout, usageFunc(root))
				return nil
			}
			for _, c := range root.Subcommands {
				if c.Name == args[0] {
					fmt.Fprint(a.stdout, usageFunc(c))
					return nil
				}
			}
			return usageErrorf("unknown command %q; run 'hubflow help' for the list of commands", args[0])
		},
	}
}

// usageFunc renders help as: purpose, usage, description with examples,
// subcommands, and flags with their defaults.
func usageFunc(c *ffcli.Command) string {
	var b strings.Builder
	if c.ShortHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.ShortHelp)
	}
	fmt.Fprintf(&b, "USAGE\n  %s\n\n", c.ShortUsage)
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.LongHelp)
	}
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "COMMANDS\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, s := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.ShortHelp)
		}
		tw.Flush()
		b.WriteString("\n")
	}
	if c.FlagSet != nil {
		n := 0
		c.FlagSet.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(&b, "FLAGS\n")
			tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
			c.FlagSet.VisitAll(func(f *flag.Flag) {
				def := f.DefValue
				if def != "" {
					def = " (default " + def + ")"
				}
				fmt.Fprintf(tw, "  -%s\t%s%s\n", f.Name, f.Usage, def)
			})
			tw.Flush()
			b.WriteString("\n")
		}
	}
	return b.String()
}
