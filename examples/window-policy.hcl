# Give the Osaka sensors a nightly maintenance-window policy through their
# desired properties, and wait for each sensor to acknowledge it in its
# reported properties (reported.maintenanceWindow.status).
#
#   hubflow run examples/window-policy.hcl

job "osaka-window-policy" {
  description = "Maintenance window 01:00-04:00 local time for the Osaka sensors"

  target {
    query = "tags.site = 'osaka'"
  }

  rollout {
    concurrency = 20
    rate        = "10/s"
  }

  step "window-policy" {
    desired = {
      maintenanceWindow = {
        start    = "01:00"
        duration = "3h"
        timezone = "Asia/Tokyo"
      }
    }

    progress = try(reported.maintenanceWindow.status, null)
    success  = try(reported.maintenanceWindow.status, "") == "accepted"
    failure  = try(reported.maintenanceWindow.status, "") == "rejected"
    timeout  = "5m"
  }
}
