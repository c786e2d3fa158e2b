-- Argo CD health of a MemoryBackup (memory-operator.io/v1alpha1).
-- Healthy when Completed; Progressing while Pending or Running (or before any status); Degraded when Failed.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the backup"
  return hs
end

local phase = status.phase
if phase == "Completed" then
  hs.status = "Healthy"
  if status.location ~= nil then
    hs.message = "Backup completed: " .. status.location
  else
    hs.message = "Backup completed"
  end
elseif phase == "Pending" or phase == "Running" then
  hs.status = "Progressing"
  hs.message = "Backup " .. string.lower(phase)
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Backup failed: " .. (status.error or "no error reported")
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
