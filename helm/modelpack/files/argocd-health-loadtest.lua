-- Argo CD health of a modelpack.dev LoadTest: Healthy once the run of its current spec succeeded (SLO met or none
-- set). An edited spec is a new run: Progressing until the operator has started and judged it.
hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelpack operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to run generation " .. obj.metadata.generation
  return hs
end
local complete = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Complete" then
      complete = c
    end
  end
end
local phase = obj.status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
if complete ~= nil then
  hs.message = complete.reason .. ": " .. (complete.message or "")
else
  hs.message = phase
end
return hs
