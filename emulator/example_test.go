package emulator_test

import (
	"context"
	"fmt"
	"log"

	"github.com/hubflow/hubflow/emulator"
)

// A test starts a hub on free loopback ports, registers a device and hands
// the connection strings and CA pool to the clients under test.
func ExampleStart() {
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if _, err := hub.CreateDevice("pump-7"); err != nil {
		log.Fatal(err)
	}
	deviceCS, err := hub.DeviceConnectionString("pump-7")
	if err != nil {
		log.Fatal(err)
	}
	serviceCS := hub.ServiceConnectionString()
	roots := hub.CAPool() // tls.Config.RootCAs for both clients
	fmt.Println(serviceCS != "", deviceCS != "", roots != nil)
	// Output: true true true
}
