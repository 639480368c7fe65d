-- Argo CD health of a modelpack.dev ModelPack: Healthy when every server is ready.
hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelpack operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local messages = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    messages[c.type] = c.message
    if c.type == "Degraded" and c.status == "True" then
      messages.degraded = c.reason .. ": " .. (c.message or "")
    end
  end
end
local phase = obj.status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = messages.Ready or "Ready"
elseif phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = messages.degraded or phase
else
  hs.status = "Progressing"
  hs.message = messages.Ready or phase
end
return hs
