variable "notes" {
default = <<-EOT
    keep   this    spacing
      and this
    EOT
}
job "h" {
  target {
  query = <<-EOQ
    tags.site = 'a'
    EOQ
  }
  step "s" {
  desired = {
  notes = var.notes
      window = { start = "01:00", duration = "3h" }
  }
  }
}
