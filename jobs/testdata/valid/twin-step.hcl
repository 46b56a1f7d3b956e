job "window-policy" {
  target {
    devices = ["press-01", "press-02"]
  }

  step "window-policy" {
    desired = { maintenanceWindow = { start = "01:00", duration = "3h" } }
    success = try(reported.maintenanceWindow.status, "") == "accepted"
    timeout = "1h"
  }
}
