-- Argo CD health of a MemoryStore (memory-operator.io/v1alpha1).
-- Suspended while paused; Progressing until the operator has reconciled the latest spec and while the
-- store is Pending or Provisioning; Healthy when Ready; Degraded when Degraded or Failed.
local hs = {}

local function ready_message(status)
  if status.conditions ~= nil then
    for _, condition in ipairs(status.conditions) do
      if condition.type == "Ready" and condition.message ~= nil and condition.message ~= "" then
        return condition.message
      end
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the store's status"
  return hs
end

local phase = status.phase
local detail = ready_message(status)

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused (spec.paused)"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = detail or "The store is ready"
elseif phase == "Pending" or phase == "Provisioning" then
  hs.status = "Progressing"
  hs.message = detail or ("The store is " .. phase)
elseif phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = detail or ("The store is " .. phase)
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
