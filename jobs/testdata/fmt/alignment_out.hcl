variable "image_uri" {
  type    = string
  default = "https://firmware.example.com/edge-2.1.0.bin"
}

job "firmware" {
  target {
    query  = "tags.site = 'plant-7'"
    follow = false # trailing comment
  }
  rollout {
    concurrency = 100
    rate        = "50/s"
    canary      = 5
  }

  step "update" {
    method  = "firmwareUpdate"
    payload = { fwPackageUri = var.image_uri }
    success = reported.firmwareStatus == "completed"
    failure = contains(["failed", "error"], reported.firmwareStatus)
  }
}
